"""Run folders are never overwritten: a second `cest train` into a folder that holds a run is
refused (unless --resume or --overwrite), a live run locks its folder, a refused resume changes
nothing, and a bad config is one line naming the key (never a traceback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.io.runlock import LOCK, RunFolderError, RunLock, folder_problem
from engine.training.trainer import main
from tests.robustness.conftest import ROOT, error_lines


def tiny_config(folder: Path, **optim) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["optim"].update({"steps": 2, **optim})
    cfg["data"].update(synthetic_clips=2, cache_dir=str(folder / "cache"))
    cfg["log"].update(samples_every=1000, checkpoint_every=1000)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def trained(tmp_path, capsys) -> tuple[Path, Path]:
    config, run = tiny_config(tmp_path), tmp_path / "run"
    assert main([str(config), "--out", str(run)]) == 0
    capsys.readouterr()
    return config, run


def test_a_second_run_into_a_folder_holding_one_is_refused(trained, capsys):
    config, run = trained
    before = files_of(run)
    assert main([str(config), "--out", str(run), "--steps", "3"]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) and "already holds a training run" in err and "--resume" in err
    assert files_of(run) == before  # checkpoint, weights and config untouched


def test_overwrite_replaces_the_run(trained, capsys):
    config, run = trained
    assert main([str(config), "--out", str(run), "--steps", "3", "--overwrite"]) == 0
    assert json.loads((run / "status.json").read_text())["step"] == 3
    assert not (run / LOCK).exists()


def test_a_live_run_locks_its_folder_and_is_named(tmp_path, capsys):
    config, run = tiny_config(tmp_path), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.mkdir()
        (run / LOCK).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": time.time()})
        )
        assert main([str(config), "--out", str(run)]) == 1
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and socket.gethostname() in err and "in use" in err
        assert not (run / "config.yaml").exists() and not (run / "checkpoint.pt").exists()
        with pytest.raises(RunFolderError, match=f"pid {holder.pid}"):
            RunLock(run).acquire()
        # the app's Train tab asks the engine the same question
        assert f"pid {holder.pid}" in folder_problem(run, resume=False)
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over(tmp_path, capsys):
    config, run = tiny_config(tmp_path), tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    assert main([str(config), "--out", str(run)]) == 0
    assert (run / "checkpoint.pt").exists() and not (run / LOCK).exists()


def test_two_runs_at_once_one_is_refused(tmp_path):
    """Two real processes into one folder: exactly one trains, the other names it."""
    config, run = tiny_config(tmp_path, steps=200), tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "engine.train", str(config), "--out", str(run)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.yaml").exists():  # written once the lock is held
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "engine.train", str(config), "--out", str(run), "--overwrite"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1 and f"pid {first.pid}" in second.stderr, second.stderr[-2000:]
    finally:
        first.kill()
        first.wait()


def test_a_refused_resume_changes_nothing(trained, capsys):
    config, run = trained
    before = files_of(run)
    assert main([str(config), "--out", str(run), "--resume", "--set", "model.width=16"]) == 1
    assert "another model config" in capsys.readouterr().err
    assert files_of(run) == before  # config.yaml included
    assert main([str(config), "--out", str(run), "--resume", "--steps", "3"]) == 0


def test_resume_of_an_empty_folder_writes_nothing(tmp_path, capsys):
    config, run = tiny_config(tmp_path), tmp_path / "run"
    run.mkdir()
    assert main([str(config), "--out", str(run), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert list(run.iterdir()) == []


# ------------------------------------------------------------------------------- bad configs


BAD = {
    "lr of the wrong type": ("optim: {lr: fast}", "optim.lr must be a number"),
    "negative lr": ("optim: {lr: -0.001}", "optim.lr must be > 0"),
    "batch 0": ("data: {clips_per_batch: 0}", "data.clips_per_batch must be >= 1"),
    "zero frames": ("data: {frames_per_clip: 0}", "data.frames_per_clip must be >= 1"),
    "zero image size": ("model: {image_size: 0}", "model.image_size must be >= 16"),
    "negative steps": ("optim: {steps: -5}", "optim.steps must be >= 1"),
    "width of the wrong type": ("model: {width: wide}", "model.width must be an integer"),
    "a bool for an int": ("log: {every: true}", "log.every must be an integer"),
    "a section that is no mapping": ("optim: 5", "config section optim must be a mapping"),
    "a negative loss weight": ("losses: {swap: -1}", "losses.swap must be >= 0"),
    "malformed YAML": ("optim: {lr: [1, 2\n", "not valid YAML at line"),
    "a YAML list": ("- optim\n- data\n", "must hold a mapping"),
    "tabs in YAML": ("optim:\n\tlr: 1\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line_naming_the_key(tmp_path, capsys, case):
    text, expected = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main([str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error:") and expected in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--steps", "-5"], "optim.steps must be >= 1"),
        (["--steps", "0"], "optim.steps must be >= 1"),
        (["--set", "optim.lr=-1"], "optim.lr must be > 0"),
        (["--set", "data.clips_per_batch=0"], "clips_per_batch"),
    ],
)
def test_bad_command_line_overrides(tmp_path, capsys, args, expected):
    config = tiny_config(tmp_path)
    assert main([str(config), "--out", str(tmp_path / "run"), *args]) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_finetune_on_a_video_with_no_face(tmp_path, capsys):
    import numpy as np

    from engine.model.chain import CestModel
    from engine.training.finetune import main as finetune_main
    from engine.training.trainer import load_config
    from tests.robustness.test_videos import write_video

    rng = np.random.default_rng(0)
    video = write_video(
        tmp_path / "noface.mp4", [rng.integers(0, 255, (64, 64, 3), np.uint8) for _ in range(4)]
    )
    base = tmp_path / "base.safetensors"
    CestModel(load_config(ROOT / "configs" / "smoke.yaml").model).save(base)
    with pytest.warns(UserWarning):
        code = finetune_main([str(video), "--from", str(base), "--out", str(tmp_path / "ft"), "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert error_lines(err) and "no face" in err


def test_the_apps_train_tab_follows_the_same_rule(trained):
    """The Train tab builds its run through cest_studio.tasks.prepare_training_run: a folder that
    holds a run is refused there too (before app_config.yaml is written), and resume is allowed."""
    from cest_studio.tasks import prepare_training_run

    _, run = trained
    request = {
        "base_config": str(ROOT / "configs" / "smoke.yaml"),
        "out_dir": str(run),
        "videos": [],
        "steps": 2,
        "resume": False,
    }
    with pytest.raises(RunFolderError, match="already holds a training run"):
        prepare_training_run(request)
    assert not (run / "app_config.yaml").exists()
    assert folder_problem(run, resume=True) is None
