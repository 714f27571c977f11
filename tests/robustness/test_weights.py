"""Weights and checkpoints from elsewhere: nothing is ever unpickled into live objects, and a file
of another configuration, a cut-off file or a foreign file gives one clear error naming the problem."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from engine.errors import CestError, WeightsError
from engine.model.chain import CestConfig, CestModel, read_weights
from engine.training.trainer import TrainConfig, TrainingError, load_checkpoint, save_checkpoint
from tests.robustness.conftest import ROOT, error_lines

SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


class Payload:
    """Unpickling this runs a shell command (what a booby-trapped checkpoint does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def plant(path: Path, marker: Path, kind: str) -> Path:
    """A file whose loading with pickle (or torch.load(weights_only=False)) touches ``marker``."""
    evil = {"model": Payload(marker), "optimizer": {}, "step": 1, "config": "{}"}
    if kind == "torch-zip":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))
    return path


@pytest.fixture(scope="module")
def face_model():
    from engine.facemodel import FaceModel

    return FaceModel.load()


@pytest.fixture(scope="module")
def small_config() -> TrainConfig:
    return TrainConfig.from_dict(yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text()))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, face_model, small_config):
    """A small model's weights and a training checkpoint, written the normal way."""
    folder = tmp_path_factory.mktemp("saved")
    model = CestModel(small_config.model, face_model)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    save_checkpoint(folder / "checkpoint.pt", model, optimizer, 10, small_config)
    return folder


def _other(config: CestConfig, **changes) -> CestConfig:
    return CestConfig.from_dict({**config.to_dict(), **changes})


# ------------------------------------------------------------------------------ malicious pickles


@pytest.mark.parametrize("kind", ["torch-zip", "raw-pickle"])
def test_malicious_checkpoint_is_refused_and_not_run(tmp_path, face_model, small_config, kind):
    marker = tmp_path / "pwned"
    path = plant(tmp_path / "checkpoint.pt", marker, kind)
    model = CestModel(small_config.model, face_model)
    with pytest.raises(TrainingError) as info:
        load_checkpoint(path, model, torch.optim.Adam(model.parameters()))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "weights_only" not in message  # no advice to load it unsafely
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torch-zip", "raw-pickle"])
def test_malicious_weights_are_refused_and_not_run(tmp_path, face_model, kind):
    marker = tmp_path / "pwned"
    for name in ("evil.safetensors", "evil.pt"):
        path = plant(tmp_path / name, marker, kind)
        with pytest.raises(WeightsError, match="not a safetensors weights file"):
            CestModel.load(path, face_model=face_model)
        with pytest.raises(WeightsError):
            read_weights(path)
    assert not marker.exists()


def test_the_planted_payload_is_live(tmp_path):
    """The control: the same file loaded unsafely does run the command (so the tests above mean
    something)."""
    marker = tmp_path / "pwned"
    plant(tmp_path / "evil.pkl", marker, "raw-pickle")
    pickle.loads((tmp_path / "evil.pkl").read_bytes())
    assert marker.exists()


def test_cli_with_malicious_weights(tmp_path, capsys):
    from engine.cli import main
    from tests.conftest import SAMPLE

    marker = tmp_path / "pwned"
    path = plant(tmp_path / "weights.safetensors", marker, "torch-zip")
    status = main(
        ["reconstruct", str(SAMPLE), "-o", str(tmp_path / "out"), "--weights", str(path), "--method", "cest"]
    )
    errors = error_lines(capsys.readouterr().err)
    assert status == 2 and len(errors) == 1 and str(path) in errors[0], errors
    assert not marker.exists() and not (tmp_path / "out" / "astronaut").exists()


def test_training_resume_from_a_malicious_checkpoint(tmp_path, capsys):
    """`python -m engine.train --resume` on a run folder holding a planted checkpoint.pt."""
    from engine.training.trainer import main

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    plant(run / "checkpoint.pt", marker, "torch-zip")
    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, "data": {**SMOKE["data"], "synthetic_clips": 2}}))
    assert main([str(config), "--out", str(run), "--resume"]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "checkpoint" in errors[0] and "\n" not in errors[0]
    assert not marker.exists()


def test_no_unsafe_loading_anywhere():
    """Every torch.load in the code passes weights_only=True; no pickle.load(s), no np.load with pickles."""
    offenders = []
    for folder in ("engine", "cest_studio"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#")[0]
                if "torch.load(" in code and "weights_only=True" not in code:
                    offenders.append(f"{path}:{n}: {line.strip()}")
                if "pickle.load" in code or "allow_pickle=True" in code or "weights_only=False" in code:
                    offenders.append(f"{path}:{n}: {line.strip()}")
    assert not offenders, offenders


# ----------------------------------------------------------------------- other configs, torn files


def test_weights_of_another_config_name_the_mismatch(tmp_path, face_model, small_config):
    model = CestModel(small_config.model, face_model)
    model.save(tmp_path / "w.safetensors")
    expected = _other(small_config.model, width=16, texture_size=64)
    with pytest.raises(WeightsError) as info:
        CestModel.load(tmp_path / "w.safetensors", config=expected, face_model=face_model)
    message = str(info.value)
    assert "width: expected 16, file has 8" in message and "texture_size: expected 64, file has 32" in message


def test_weights_whose_tensors_do_not_fit_their_config(tmp_path, face_model, small_config):
    """Metadata claiming one config, tensors of another (a hand-edited or mixed-up file)."""
    from safetensors.torch import save_file

    small = CestModel(small_config.model, face_model)
    bigger = CestModel(_other(small_config.model, width=16), face_model)
    tensors = {k: v.contiguous() for k, v in bigger.state_dict().items()}
    save_file(
        tensors,
        str(tmp_path / "mixed.safetensors"),
        metadata={"format": "cest-v1", "config": __import__("json").dumps(small.config.to_dict())},
    )
    with pytest.raises(WeightsError, match="do not fit the model config"):
        CestModel.load(tmp_path / "mixed.safetensors", face_model=face_model)


def test_foreign_and_torn_weights(tmp_path, face_model, small_config):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="holds no CEST model"):
        CestModel.load(tmp_path / "other.safetensors", face_model=face_model)
    CestModel(small_config.model, face_model).save(tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    for cut in (0, 7, 200, len(data) // 2, len(data) - 1):
        (tmp_path / "torn.safetensors").write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="not a safetensors weights file") as info:
            CestModel.load(tmp_path / "torn.safetensors", face_model=face_model)
        assert "\n" not in str(info.value)
    with pytest.raises(WeightsError, match="no weights file"):
        CestModel.load(tmp_path / "missing.safetensors", face_model=face_model)


def test_checkpoint_of_another_config_names_the_mismatch(saved, face_model, small_config):
    model = CestModel(_other(small_config.model, width=16, conditional=False), face_model)
    with pytest.raises(TrainingError) as info:
        load_checkpoint(saved / "checkpoint.pt", model, torch.optim.Adam(model.parameters()))
    message = str(info.value)
    assert "width: expected 16, file has 8" in message
    assert "conditional: expected False, file has True" in message


def test_torn_checkpoints(saved, tmp_path, face_model, small_config):
    data = (saved / "checkpoint.pt").read_bytes()
    model = CestModel(small_config.model, face_model)
    optimizer = torch.optim.Adam(model.parameters())
    for cut in (0, 10, len(data) // 3, len(data) - 20):
        (tmp_path / "torn.pt").write_bytes(data[:cut])
        with pytest.raises(TrainingError, match="cannot read checkpoint") as info:
            load_checkpoint(tmp_path / "torn.pt", model, optimizer)
        assert "\n" not in str(info.value)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")  # loads, but is no checkpoint
    with pytest.raises(TrainingError, match="foreign.pt"):
        load_checkpoint(tmp_path / "foreign.pt", model, optimizer)
    assert load_checkpoint(saved / "checkpoint.pt", model, optimizer) == 10  # the good one still loads


def test_init_weights_of_another_config(tmp_path, face_model, small_config, capsys):
    """`engine.train --init W` where W was trained with another model config."""
    from engine.training.trainer import main

    CestModel(_other(small_config.model, width=16), face_model).save(tmp_path / "w.safetensors")
    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump({**SMOKE, "data": {**SMOKE["data"], "synthetic_clips": 2}}))
    assert main([str(config), "--out", str(tmp_path / "run"), "--init", str(tmp_path / "w.safetensors")]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "width: expected 8, file has 16" in errors[0]


def test_reconstructor_with_torn_weights(tmp_path, face_model, small_config):
    from engine.reconstruct.reconstructor import Reconstructor

    CestModel(small_config.model, face_model).save(tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CestError, match="not a safetensors weights file"):
        Reconstructor(method="cest", weights=tmp_path / "w.safetensors")
    shutil.rmtree(tmp_path)
