"""Training: the smoke recipe learns, resume is exact, a full disk is reported, DDP ranks agree,
fine-tuning runs end to end."""

import errno
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from engine.model.chain import CestModel
from engine.training.finetune import FINETUNE_RECIPE, finetune
from engine.training.losses import cest_losses, swap_partners
from engine.training.trainer import Trainer, TrainingError, load_config, main, parse_overrides, train
from tests.conftest import ROOT, SHARED

SMOKE = ROOT / "configs" / "smoke.yaml"
VIDEO = SHARED / "data" / "faces" / "video_short.mp4"


def smoke(tmp_path: Path, **optim):
    return load_config(
        SMOKE,
        {"data": {"cache_dir": str(tmp_path / "cache")}, "optim": optim, "log": {"samples_every": 1000}},
    )


def weights_of(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_configs_load():
    for path in [
        *sorted((ROOT / "configs").glob("*.yaml")),
        ROOT / "resources" / "recipes" / "finetune.yaml",
    ]:
        load_config(path)


def test_the_builtin_recipe_is_the_one_shipped_yaml_and_valid():
    import yaml

    from engine.training.config import TrainConfig

    shipped = ROOT / "resources" / "recipes" / "finetune.yaml"
    assert not (ROOT / "configs" / "finetune.yaml").exists()  # one copy only
    assert yaml.safe_load(shipped.read_text()) == FINETUNE_RECIPE
    assert TrainConfig.from_dict(FINETUNE_RECIPE).optim.steps > 0


def test_unknown_config_keys_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {stepz: 3}\n")
    with pytest.raises(TrainingError, match="stepz"):
        load_config(bad)


def test_command_line_runs_with_overrides(tmp_path, capsys):
    assert parse_overrides(["model.conditional=false", "optim.steps=2"]) == {
        "model": {"conditional": False},
        "optim": {"steps": 2},
    }
    out = tmp_path / "cli"
    code = main(
        [
            str(SMOKE),
            "--out",
            str(out),
            "--steps",
            "2",
            "--set",
            f"data.cache_dir={tmp_path / 'cache'}",
            "--set",
            "model.conditional=false",
        ]
    )
    assert code == 0 and "weights:" in capsys.readouterr().out
    assert CestModel.load(out / "weights.safetensors").config.conditional is False
    assert main([str(tmp_path / "missing.yaml")]) == 1


def test_smoke_training_lowers_the_loss(tmp_path):
    trainer = Trainer(smoke(tmp_path, steps=30), tmp_path / "run")

    def loss_on_fixed_batch():
        batch = trainer.data.batch(0)
        with torch.no_grad():
            params = trainer.model(batch["image"])
            partner = swap_partners(batch["clip_id"], torch.Generator().manual_seed(0))
            return cest_losses(
                params, batch, trainer.face_model, trainer.renderer, trainer.config.losses, partner
            ).total.item()

    before = loss_on_fixed_batch()
    trainer.run()
    after = loss_on_fixed_batch()
    assert after < 0.8 * before
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 30
    assert {"photometric", "swap", "symmetry", "landmark", "identity", "expression"} <= set(status["losses"])
    CestModel.load(tmp_path / "run" / "weights.safetensors")
    assert list((tmp_path / "run" / "tb").iterdir())


def test_resume_continues_bit_for_bit(tmp_path):
    straight = Trainer(smoke(tmp_path, steps=6), tmp_path / "straight")
    straight.run()
    first = Trainer(smoke(tmp_path, steps=3), tmp_path / "split")
    first.run()
    resumed = Trainer(smoke(tmp_path, steps=6), tmp_path / "split")
    resumed.run(resume=True)
    assert resumed.step == 6
    a, b = weights_of(straight.model), weights_of(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stop_event_checkpoints_and_stops(tmp_path):
    import threading

    stop = threading.Event()
    seen = []

    def progress(status):
        seen.append(status["step"])
        if status["step"] >= 5:
            stop.set()

    train(smoke(tmp_path, steps=30), tmp_path / "run", progress_callback=progress, stop_event=stop)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 5 and seen
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "stopped"


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(smoke(tmp_path, steps=20), tmp_path / "run")
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(TrainingError, match="disk full.*previous checkpoint"):
        trainer.run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 10
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, cache: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    config = load_config(
        SMOKE,
        {"threads": 1, "data": {"cache_dir": cache}, "optim": {"steps": 3}, "log": {"samples_every": 1000}},
    )
    trainer = Trainer(config, out)
    trainer.run()
    torch.save(weights_of(trainer.model), Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_hold_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(tmp_path / "cache")), nprocs=2, join=True)
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = CestModel(load_config(SMOKE).model).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it did train
    assert (out / "weights.safetensors").exists()


@pytest.mark.skipif(not VIDEO.exists(), reason="needs ../shared/data/faces/video_short.mp4")
def test_finetune_end_to_end_on_a_few_frames(tmp_path):
    base = tmp_path / "base.safetensors"
    CestModel(load_config(SMOKE).model).save(base)
    recipe = tmp_path / "ft.yaml"
    recipe.write_text(
        json.dumps(
            {
                **FINETUNE_RECIPE,
                "data": {
                    **FINETUNE_RECIPE["data"],
                    "max_frames": 8,
                    "frame_step": 3,
                    "cache_dir": str(tmp_path / "cache"),
                },
                "log": {**FINETUNE_RECIPE["log"], "progress_bar": False},
            }
        )
    )
    weights = finetune(VIDEO, base, tmp_path / "ft", steps=3, config=recipe)
    model = CestModel.load(weights)
    assert model.config == load_config(SMOKE).model
    before = CestModel.load(base).state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_sigint_stops_after_the_step_checkpoints_it_and_shows_a_sample(tmp_path):
    """What the app's Stop sends: the run ends its step, checkpoints that very step, writes a
    sample grid (a short run shows one too) and says so without a command-line flag."""
    import subprocess
    import sys

    run = tmp_path / "run"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.train",
            str(SMOKE),
            "--out",
            str(run),
            "--steps",
            "5000",
            "--set",
            f"data.cache_dir={tmp_path / 'cache'}",
            "--set",
            "log.every=1",
            "--set",
            "log.checkpoint_every=1000",
            "--set",
            "log.samples_every=1000",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = _ctrl_c_at_step(child, run, 7)
    assert child.returncode == 0, err[-2000:]
    status = json.loads((run / "status.json").read_text())
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert status["state"] == "stopped" and status["step"] == step >= 7
    assert (run / "samples" / f"step_{step:07d}.png").exists()
    assert "--resume" not in err


def _ctrl_c_at_step(child, run, step: int) -> tuple[str, str]:
    """Once the run's status.json reaches ``step`` (or 240 s passed), SIGINT the child; its output."""
    import signal
    import time

    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if json.loads((run / "status.json").read_text())["step"] >= step:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    return child.communicate(timeout=120)


@pytest.mark.skipif(not VIDEO.exists(), reason="needs ../shared/data/faces/video_short.mp4")
def test_finetune_sigint_stops_after_the_step_and_checkpoints_it(tmp_path):
    """`cest finetune` stops as `cest train` does: Ctrl-C ends the step, checkpoints it, exits 0."""
    import subprocess
    import sys

    base = tmp_path / "base.safetensors"
    CestModel(load_config(SMOKE).model).save(base)
    recipe = tmp_path / "ft.yaml"
    recipe.write_text(
        json.dumps(
            {
                **FINETUNE_RECIPE,
                "data": {
                    **FINETUNE_RECIPE["data"],
                    "max_frames": 8,
                    "frame_step": 3,
                    "cache_dir": str(tmp_path / "cache"),
                },
                "log": {
                    **FINETUNE_RECIPE["log"],
                    "every": 1,
                    "checkpoint_every": 1000,
                    "progress_bar": False,
                },
            }
        )
    )
    run = tmp_path / "ft"
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.finetune", str(VIDEO), "--from", str(base), "--out", str(run)]
        + ["--steps", "5000", "--config", str(recipe)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = _ctrl_c_at_step(child, run, 3)
    assert child.returncode == 0, err[-2000:]
    status = json.loads((run / "status.json").read_text())
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert status["state"] == "stopped" and status["step"] == step >= 3
    assert "stopped after the current step" in err and "weights:" in out
    assert (run / "weights.safetensors").exists()


def test_a_short_run_writes_a_sample_at_its_end(tmp_path):
    train(smoke(tmp_path, steps=3), tmp_path / "run")
    assert [p.name for p in (tmp_path / "run" / "samples").glob("*.png")] == ["step_0000003.png"]
