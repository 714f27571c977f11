"""Training under faults: SIGKILL at a random moment and --resume; a kill in the middle of writing
a checkpoint; a full disk while checkpointing. At most the steps since the last checkpoint are lost,
and the checkpoint on disk always loads."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from engine.model.chain import CestModel
from engine.training.trainer import TrainConfig, TrainingError, save_checkpoint
from tests.robustness.conftest import PYTHON, ROOT, small_tmpfs

STEPS, EVERY = 12, 4


def write_config(folder: Path) -> Path:
    """configs/smoke.yaml with a checkpoint every 4 steps, status every step, no sample grids."""
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["optim"]["steps"] = STEPS
    cfg["data"]["synthetic_clips"] = 2
    cfg["log"].update(every=1, checkpoint_every=EVERY, samples_every=10_000, progress_bar=False)
    path = folder / "fault.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(args: list[str], log: Path, code: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [PYTHON, "-c", code, *args] if code else [PYTHON, "-m", "engine.train", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(condition, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def checkpoint_step(run: Path) -> int:
    """The step of the checkpoint on disk; both files must load (weights_only: no code runs)."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    CestModel.load(run / "weights.safetensors")
    return int(state["step"])


# Runs engine.train (arguments argv[2:]) with the first checkpoint write of the process hanging
# half-way: half the bytes in the temporary file, then it announces it (file argv[1]) and waits.
HANG_IN_SAVE = """
import sys, time
from pathlib import Path
flag = sys.argv[1]
real = Path.write_bytes
def hanging_write(self, data):
    if self.name.startswith(".checkpoint.pt."):
        real(self, bytes(data)[: len(data) // 2])
        open(flag, "w").close()
        time.sleep(600)
    return real(self, data)
Path.write_bytes = hanging_write
from engine.training.trainer import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_at_a_random_moment_then_resume(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    config, run = write_config(tmp_path), tmp_path / "run"
    log = tmp_path / "train.log"

    # 1. kill at a random moment after the first checkpoint (while training, or writing another one)
    proc = start([str(config), "--out", str(run)], log)
    wait_for(lambda: (run / "checkpoint.pt").exists(), proc, 240, log)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((run / "status.json").read_text())
    note = f"(seed {seed}, killed after step {status['step']})"
    step = checkpoint_step(run)
    assert step % EVERY == 0 and 0 < step <= STEPS, note
    assert status["step"] - step <= EVERY, f"lost more than the steps since the last checkpoint {note}"

    # 2. resume, and kill it half-way through writing its next checkpoint: the checkpoint on disk
    #    must still be the previous one
    if step < STEPS:
        flag = tmp_path / "saving"
        proc = start([str(flag), str(config), "--out", str(run), "--resume"], log, HANG_IN_SAVE)
        wait_for(flag.exists, proc, 240, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert checkpoint_step(run) == step, note
        assert [p for p in run.iterdir() if p.name.startswith(".checkpoint.pt.")], "the write was in flight"

    # 3. resume to the end
    proc = start([str(config), "--out", str(run), "--resume"], log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert checkpoint_step(run) == STEPS, note
    final = json.loads((run / "status.json").read_text())
    assert final["state"] == "done" and final["step"] == STEPS
    assert not [p for p in run.iterdir() if p.name.startswith(".checkpoint.pt.")], (
        "resume clears the leftovers"
    )


# ---------------------------------------------------------------------------------- full disk


@pytest.fixture(scope="module")
def small():
    from engine.facemodel import FaceModel

    config = TrainConfig.from_dict(yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text()))
    model = CestModel(config.model, FaceModel.load())
    return config, model, torch.optim.Adam(model.parameters(), 1e-3)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def fill_disk_on(monkeypatch, prefix: str) -> None:
    """Writing a file whose name starts with ``prefix`` runs out of space half-way."""
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(prefix):
            real(self, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("failing", ["checkpoint", "weights"])
def test_full_disk_while_checkpointing_keeps_the_files(tmp_path, small, monkeypatch, failing):
    """The disk fills half-way through writing the checkpoint or the weights (patched): a clear
    error, every file on disk whole and loadable, no temporary file left behind."""
    config, model, optimizer = small
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", model, optimizer, 10, config)
    before = _snapshot(run)
    fill_disk_on(monkeypatch, ".checkpoint.pt." if failing == "checkpoint" else ".weights.safetensors.")
    with pytest.raises(TrainingError, match="disk full") as info:
        save_checkpoint(run / "checkpoint.pt", model, optimizer, 20, config)
    assert "\n" not in str(info.value) and "--resume" in str(info.value)
    monkeypatch.undo()
    after = _snapshot(run)
    if failing == "checkpoint":
        assert after == before
    else:  # the checkpoint went through, the weights file failed and is the old one
        assert after["weights.safetensors"] == before["weights.safetensors"]
        assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 20
    assert checkpoint_step(run) in (10, 20)
    assert not [name for name in after if name.endswith(".tmp")]


def test_really_full_disk_while_checkpointing(tmp_path, small):
    """A tmpfs with room for one checkpoint and half of another: the second one does not fit."""
    config, model, optimizer = small
    save_checkpoint(tmp_path / "probe" / "checkpoint.pt", model, optimizer, 10, config)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "probe").iterdir()}
    room = sum(sizes.values()) + sizes["checkpoint.pt"] // 2 + 64 * 1024
    with small_tmpfs(tmp_path / "disk", str(room)) as disk:
        save_checkpoint(disk / "checkpoint.pt", model, optimizer, 10, config)
        before = _snapshot(disk)
        with pytest.raises(TrainingError, match="disk full.*previous checkpoint .* is kept"):
            save_checkpoint(disk / "checkpoint.pt", model, optimizer, 20, config)
        assert _snapshot(disk) == before
        assert checkpoint_step(disk) == 10
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
