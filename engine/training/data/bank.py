"""A synthetic training set rendered once and kept on disk (one npz), shared by runs and processes.

Rendering a clip costs far more than reading it, and the default recipe trains two models (CEST
and the unconditioned ablation) on the same synthetic clips, so they are rendered once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engine.facemodel import FaceModel
from engine.io.atomic import atomic_path
from engine.params import FaceParams
from engine.training.data.synthetic import SyntheticConfig, SyntheticFaces

log = logging.getLogger(__name__)
BANK_VERSION = 1  # bump when the renderings change for the same config
PARAM_NAMES = ("rotation", "translation", "scale", "identity", "expression", "light")


def model_fingerprint(model: FaceModel) -> str:
    """A hash of what the renders depend on: the mesh, its bases, its landmark vertices and the
    lines its jaw points slide on."""
    digest = hashlib.sha1()
    for tensor in (
        model.mean,
        model.identity_basis,
        model.expression_basis,
        model.faces,
        model.uvs,
        model.landmarks,
        model.jaw_lines.vertices,
        model.jaw_lines.directions,
    ):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def bank_path(
    root: Path, config: SyntheticConfig, length: int, seed: int, split: str, model: FaceModel
) -> Path:
    key = json.dumps(
        [asdict(config), length, seed, split, BANK_VERSION, model_fingerprint(model)], sort_keys=True
    )
    return root / f"synthetic-{split}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


class SyntheticBank(torch.utils.data.Dataset):
    """Clips of :class:`SyntheticFaces`, identical to rendering them, read from arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["image"])

    def __getitem__(self, index: int) -> dict:
        return self.sample(index)

    def sample(self, index: int, rng=None) -> dict:
        a = self.arrays
        k = a["image"].shape[1]
        params = {n: torch.from_numpy(a[n][index]) for n in PARAM_NAMES}
        params["albedo"] = torch.from_numpy(a["albedo"][index].astype(np.float32)).expand(k, -1, -1, -1)
        return {
            "image": torch.from_numpy(a["image"][index]),
            "mask": torch.from_numpy(a["mask"][index]),
            "landmarks": torch.from_numpy(a["landmarks"][index]),
            "params": FaceParams(**params),
        }

    @classmethod
    def build(cls, faces: SyntheticFaces, progress: bool = True) -> SyntheticBank:
        from tqdm import tqdm

        columns: dict[str, list] = {}
        for i in tqdm(range(len(faces)), desc="rendering synthetic faces", disable=not progress):
            clip = faces[i]
            p = clip["params"]
            row = {
                "image": clip["image"],
                "mask": (clip["mask"] * 255).round().byte(),
                "landmarks": clip["landmarks"],
                "albedo": p.albedo[0].half(),
            }
            row.update({n: getattr(p, n) for n in PARAM_NAMES})
            for name, value in row.items():
                columns.setdefault(name, []).append(value.numpy())
        return cls({k: np.stack(v) for k, v in columns.items()})

    @classmethod
    def load_or_build(
        cls,
        config: SyntheticConfig,
        length: int,
        seed: int,
        split: str,
        root: Path,
        face_model: FaceModel | None = None,
    ) -> SyntheticBank:
        face_model = face_model or FaceModel.load()
        path = bank_path(root, config, length, seed, split, face_model)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    return cls({k: data[k] for k in data.files})
            except (OSError, ValueError) as err:
                log.warning("%s: unreadable (%s), rendering again", path, err)
        bank = cls.build(SyntheticFaces(config, length, seed, split, face_model))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **bank.arrays)
        return bank
