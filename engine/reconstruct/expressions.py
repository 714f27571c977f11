"""The 53 expressions as things a person edits: grouped by face region, set, transferred.

Expression weights are ARKit-style blendshape weights in [0, 1] (engine/facemodel.py); setting or
transferring them changes only the expression, never the identity, reflectance, light or pose.
"""

from __future__ import annotations

import torch

from engine.params import FaceParams

# region -> the name prefixes that belong to it (noseSneer moves the cheeks and nose: "cheeks")
REGIONS = {
    "brows": ("brow",),
    "eyes": ("eye",),
    "cheeks": ("cheek", "nose"),
    "mouth": ("mouth",),
    "jaw": ("jaw",),
}


def regions(names: list[str]) -> dict[str, list[int]]:
    """Region -> indices of its expressions, in the model's order; every expression in one region."""
    grouped = {region: [] for region in REGIONS}
    for i, name in enumerate(names):
        region = next((r for r, prefixes in REGIONS.items() if name.startswith(prefixes)), "mouth")
        grouped[region].append(i)
    return grouped


def label(name: str) -> str:
    """A slider's label: ``mouthSmile_L`` -> ``smile L`` (the region already says "mouth")."""
    base, _, side = name.partition("_")
    prefix = next(
        (p for prefixes in REGIONS.values() for p in prefixes if base.startswith(p) and p != "nose"), ""
    )
    rest = base[len(prefix) :] or base
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in rest).strip()
    return f"{words} {side}".strip()


def with_expression(params: FaceParams, expression) -> FaceParams:
    """``params`` with the given expression weights (a sequence of n_expression or a (B, E) tensor),
    clipped to [0, 1]; None keeps the estimate."""
    if expression is None:
        return params
    weights = torch.as_tensor(expression, dtype=params.expression.dtype, device=params.expression.device)
    if weights.shape[-1] != params.expression.shape[-1]:
        raise ValueError(
            f"{weights.shape[-1]} expression weights given; the model has {params.expression.shape[-1]}"
        )
    return params.replace(
        expression=weights.reshape(-1, weights.shape[-1]).expand_as(params.expression).clamp(0, 1)
    )


def transfer(target: FaceParams, source: FaceParams) -> FaceParams:
    """The target face wearing the source face's expression (everything else the target's)."""
    return with_expression(target, source.expression.detach())
