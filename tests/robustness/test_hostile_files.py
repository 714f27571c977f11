"""Weights full of NaN, weights whose metadata has wrong types, FIFOs named like photos or videos,
and Ctrl-C in a batch: each is one clear line (or a stop), never a hang, a traceback or NaN output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.errors import WeightsError
from engine.model.chain import FORMAT, CestConfig, CestModel, read_weights
from tests.robustness.conftest import PYTHON, ROOT, SAMPLE, error_lines

SMALL = {"image_size": 64, "texture_size": 32, "width": 8, "features": 64, "occlusion": False}


def small_model() -> CestModel:
    return CestModel(CestConfig.from_dict(SMALL))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_non_finite_tensors_are_refused(tmp_path, bad):
    path = tmp_path / "nan.safetensors"
    model = small_model()
    with torch.no_grad():
        next(model.parameters()).fill_(bad)
    model.save(path)
    with pytest.raises(WeightsError, match="NaN or infinite"):
        read_weights(path)


def test_cli_with_nan_weights_is_one_error_line(tmp_path, capsys):
    from engine.cli import main

    path = tmp_path / "nan.safetensors"
    model = small_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.save(path)
    out = tmp_path / "out"
    assert main(["reconstruct", str(SAMPLE), "-o", str(out), "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "NaN" in err and error_lines(err)
    assert not out.exists() or not any(out.rglob("*.json"))


@pytest.mark.parametrize(
    "config, expected",
    [
        ({**SMALL, "width": "8"}, "model.width must be an integer"),
        ({**SMALL, "image_size": -4}, "model.image_size must be >= 16"),
        ({**SMALL, "conditional": "yes"}, "model.conditional must be true or false"),
        ({**SMALL, "translation_init": "ab"}, "translation_init must be a list of numbers"),
        ({**SMALL, "translation_init": 3}, "unreadable model config"),
        ([1, 2], "unreadable model config"),
    ],
)
def test_weights_metadata_of_the_wrong_type(tmp_path, config, expected):
    path = tmp_path / "w.safetensors"
    tensors = {k: v.contiguous() for k, v in small_model().state_dict().items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": json.dumps(config)})
    with pytest.raises(WeightsError, match=expected) as info:
        CestModel.load(path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- special files


@pytest.mark.parametrize("name", ["x.jpg", "x.mp4"])
def test_a_fifo_is_one_error_line_and_never_blocks(tmp_path, name):
    """In a child process with a deadline: a FIFO nobody writes to would block an open() for ever."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    Image.open(SAMPLE).save(good)
    run = subprocess.run(
        [
            PYTHON,
            "-m",
            "engine.cli",
            "reconstruct",
            str(fifo),
            str(good),
            "--method",
            "fit",
            "-o",
            str(tmp_path / "out"),
            "--formats",
            "obj",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    errors = error_lines(run.stderr)
    assert run.returncode == 1 and len(errors) == 1, run.stderr[-2000:]
    assert str(fifo) in errors[0] and "not a regular file" in errors[0]
    assert (tmp_path / "out" / "good" / "face.obj").exists()


def test_a_fifo_inside_a_folder_is_skipped(tmp_path):
    from engine.reconstruct.batch import expand_inputs

    os.mkfifo(tmp_path / "y.jpg")
    Image.open(SAMPLE).save(tmp_path / "a.png")
    assert expand_inputs([tmp_path]) == [tmp_path / "a.png"]


def test_ctrl_c_that_a_reader_turns_into_an_error_stops_the_batch(tmp_path, cli, monkeypatch, capsys):
    """A reader that catches the KeyboardInterrupt and raises its own error (as decoders do):
    the batch still stops at once with exit 130, and the next input is not started."""
    import engine.reconstruct.batch

    seen = []

    def reader(reconstructor, path, *args):
        seen.append(path.name)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise OSError(5, "Input/output error") from None

    monkeypatch.setattr(engine.reconstruct.batch, "_reconstruct_image", reader)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN under nohup or `&`
    for name in ("a.png", "b.png"):
        Image.open(SAMPLE).save(tmp_path / name)
    status = cli(
        ["reconstruct", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "out")]
    )
    assert status == 130 and seen == ["a.png"]
    assert not error_lines(capsys.readouterr().err)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
