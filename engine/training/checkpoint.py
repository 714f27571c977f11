"""Training checkpoints: atomic writes, exact resume (RNG state included), clear load errors."""

from __future__ import annotations

import errno
import io
import json
import random
from pathlib import Path

import numpy as np
import torch

from engine.io.atomic import atomic_path
from engine.model.chain import CestConfig, CestModel, config_mismatch
from engine.training.config import TrainConfig, TrainingError

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.safetensors"
STATUS = "status.json"


# ----------------------------------------------------------------------------- checkpoints


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, model: CestModel, optimizer, step: int, config: TrainConfig) -> None:
    """Write atomically; on a full disk the previous checkpoint stays and a clear error says so."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "rng": rng_state(),
        "config": json.dumps(config.to_dict()),
    }
    try:
        # Serialised in memory, written with Python's I/O: a full disk then raises OSError(ENOSPC)
        # (torch.save straight to a file raises a bare RuntimeError from its zip writer instead).
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        with atomic_path(path.with_name(WEIGHTS)) as tmp:
            model.save(tmp, {"step": step})
    except OSError as err:
        if err.errno == errno.ENOSPC:
            kept = f"the previous checkpoint {path} is kept" if path.exists() else "no checkpoint was kept"
            raise TrainingError(
                f"disk full while writing a checkpoint at step {step}: {kept}; "
                f"free some space and rerun with --resume"
            ) from err
        raise


def load_checkpoint(path: Path, model: CestModel, optimizer) -> int:
    """Restore model, optimizer and RNG states; returns the step to continue from."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn, foreign or booby-trapped file (weights_only runs no code)
        raise TrainingError(f"cannot read checkpoint {path}: {_load_failure(err)}") from err
    try:
        stored = CestConfig.from_dict(json.loads(state["config"])["model"])
    except (KeyError, IndexError, TypeError, ValueError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise TrainingError(f"{path} is not a CEST training checkpoint ({reason})") from err
    mismatch = config_mismatch(model.config, stored)
    if mismatch:
        raise TrainingError(f"checkpoint {path} was written with another model config: {mismatch}")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        return int(state["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise TrainingError(f"checkpoint {path} does not fit this model ({reason})") from err


def _load_failure(err: Exception) -> str:
    """One line on why torch.load refused a file (without its advice to load it unsafely)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if "Weights only load failed" in str(err):
        culprit = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), "")
        return f"it holds objects other than tensors and plain values, refused unloaded ({culprit})"
    return lines[0][:300] if lines else type(err).__name__
