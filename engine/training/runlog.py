"""What a training run reports as it goes: the progress bar, TensorBoard scalars, status.json
(what the app polls) and the sample grids (rank 0 only)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.io.atomic import atomic_path, write_text
from engine.training.checkpoint import STATUS
from engine.training.config import TrainConfig, lr_at


class RunLogger:
    """tqdm bar, TensorBoard scalars, status.json and sample PNGs (rank 0 only)."""

    def __init__(self, out: Path, cfg: TrainConfig, main: bool, start: int, callback):
        self.out, self.cfg, self.main, self.callback = out, cfg, main, callback
        self.start_step, self.start_time = start, time.time()
        self.bar: Any = None  # tqdm, on rank 0 with log.progress_bar
        self.writer: Any = None  # TensorBoard's SummaryWriter, on rank 0
        self.latest: dict[str, float] = {}
        self.last_step = start
        if not main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tb"), purge_step=start or None)
        if cfg.log.progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=cfg.optim.steps, initial=start, desc="train", unit="step", dynamic_ncols=True
            )

    def step(self, step: int, terms: dict[str, float], images: int) -> None:
        self.latest, self.last_step = terms, step
        self.images_per_step = images
        if not self.main:
            return
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{terms['total']:.4f}", refresh=False)
        if step % self.cfg.log.every == 0 or step == self.cfg.optim.steps:
            for name, value in terms.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            self.writer.add_scalar("lr", lr_at(step - 1, self.cfg.optim), step)
            self.status("running", step)

    def status(self, state: str, step: int, message: str = "") -> dict:
        elapsed = time.time() - self.start_time
        done = max(step - self.start_step, 0)
        per_step = elapsed / done if done else None
        status = {
            "state": state,
            "step": step,
            "steps": self.cfg.optim.steps,
            "losses": self.latest,
            "elapsed_s": round(elapsed, 1),
            "eta_s": round(per_step * (self.cfg.optim.steps - step), 1) if per_step else None,
            "images_per_s": round(done * getattr(self, "images_per_step", 0) / elapsed, 2)
            if elapsed
            else None,
            "message": message,
            "time": time.time(),
        }
        if self.main:
            try:
                write_text(self.out / STATUS, json.dumps(status, indent=1))
            except OSError:
                pass  # the status file is a courtesy; a full disk is reported by the checkpoint
            if self.callback:
                self.callback(status)
        return status

    def samples(self, step: int, grid: np.ndarray) -> None:
        path = self.out / "samples" / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if ok:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data.tobytes())
        self.writer.add_image("samples", grid, step, dataformats="HWC")

    def finish(self, state: str, message: str = "") -> None:
        if not self.main:
            return
        if self.bar:
            self.bar.close()
        self.status(state, self.last_step, message)
        self.writer.close()
