"""FaceParams: the four CEST factors of a batch of faces."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from engine.camera import project, to_camera
from engine.facemodel import FaceModel


@dataclass
class FaceParams:
    """Viewpoint, shape, reflectance and illumination of B faces (see docs/conventions.md).

    rotation (B, 3) pitch/yaw/roll radians; translation (B, 2) crop NDC; scale (B, 1) NDC per cm;
    identity (B, n_identity) ~N(0, 1); expression (B, n_expression) in [0, 1];
    albedo (B, 3, T, T) UV map in [0, 1]; light (B, 9, 3) SH coefficients.
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    albedo: torch.Tensor
    light: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.rotation.shape[0]

    def fields(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def map(self, fn) -> FaceParams:
        """``fn`` applied to every field (a field not estimated yet, None, stays None)."""
        return FaceParams(**{k: None if v is None else fn(v) for k, v in self.fields().items()})

    def detach(self) -> FaceParams:
        return self.map(torch.Tensor.detach)

    def to(self, device) -> FaceParams:
        return self.map(lambda t: t.to(device))

    def select(self, index) -> FaceParams:
        """A sub-batch (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self.map(lambda t: t[index])

    def replace(self, **changes) -> FaceParams:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def cat(items: list[FaceParams]) -> FaceParams:
        names = items[0].fields().keys()
        return FaceParams(**{n: torch.cat([getattr(p, n) for p in items]) for n in names})

    def geometry(self, model: FaceModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model-space, camera-space and crop-NDC vertices, each (B, V, 3)."""
        verts = model.vertices(self.identity, self.expression)
        cam = to_camera(verts, self.rotation)
        return verts, cam, project(cam, self.scale, self.translation)

    def to_json(self, index: int = 0) -> dict:
        """Everything but the albedo map, as plain lists (for params.json)."""
        pick = lambda t: t[index].detach().cpu().tolist()  # noqa: E731
        return {
            "viewpoint": {
                "rotation_pitch_yaw_roll_rad": pick(self.rotation),
                "translation_ndc": pick(self.translation),
                "scale_ndc_per_cm": pick(self.scale)[0],
            },
            "identity": pick(self.identity),
            "expression": pick(self.expression),
            "sh_light_9x3": pick(self.light),
        }
