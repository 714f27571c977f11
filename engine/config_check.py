"""Checking a configuration's values: each field's type, and the range the code can work with.

``config_problem(config)`` walks a (nested) config dataclass and returns the first problem as one
line naming the key and what is allowed ("optim.lr must be a number > 0, got -0.001"), or None.
The types come from the dataclasses' own annotations; the ranges from ``RANGES`` below.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass

_ANY = (-math.inf, math.inf)
_POSITIVE = (1, math.inf)
_NON_NEGATIVE = (0, math.inf)
_FRACTION = (0, 1)

# key -> (low, high, low is exclusive). Keys not named here may take any value of their type.
RANGES: dict[str, tuple[float, float, bool]] = {
    "threads": (1, 1024, False),
    "model.image_size": (16, 2048, False),
    "model.texture_size": (8, 4096, False),
    "model.width": (1, 4096, False),
    "model.features": (1, 1 << 16, False),
    "model.n_identity": (1, 10_000, False),
    "model.n_expression": (1, 10_000, False),
    "model.scale_init": (0, math.inf, True),
    "optim.steps": (1, math.inf, False),
    "optim.lr": (0, math.inf, True),
    "optim.lr_min_fraction": (*_FRACTION, False),
    "optim.warmup_steps": (*_NON_NEGATIVE, False),
    "optim.warm_start_steps": (*_NON_NEGATIVE, False),
    "optim.grad_clip": (*_NON_NEGATIVE, False),
    "optim.weight_decay": (*_NON_NEGATIVE, False),
    "log.every": (*_POSITIVE, False),
    "log.samples_every": (*_POSITIVE, False),
    "log.checkpoint_every": (*_POSITIVE, False),
    "log.samples": (*_POSITIVE, False),
    "data.clips_per_batch": (*_POSITIVE, False),
    "data.frames_per_clip": (*_POSITIVE, False),
    "data.max_gap": (*_POSITIVE, False),
    "data.synthetic_clips": (*_NON_NEGATIVE, False),
    "data.synthetic_fraction": (*_FRACTION, False),
    "data.frame_step": (*_POSITIVE, False),
    "data.max_frames": (*_NON_NEGATIVE, False),
    "data.forehead": (*_NON_NEGATIVE, False),
}
RANGE_PREFIXES = {"losses.": (*_NON_NEGATIVE, False)}  # every loss weight

_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "tuple": (list, tuple),
    "dict": (dict,),
}
_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping",
}


def _allowed(annotation: str) -> tuple[tuple[type, ...], str, bool]:
    """(accepted types, their name, None allowed) from an annotation string such as 'str | None'."""
    parts = [p.strip() for p in str(annotation).split("|")]
    optional = "None" in parts
    base = next((p.split("[")[0] for p in parts if p != "None"), "")
    return _TYPES.get(base, (object,)), _NAMES.get(base, "a value"), optional


def _type_problem(key: str, value, annotation: str) -> str | None:
    types, name, optional = _allowed(annotation)
    if value is None and optional:
        return None
    wrong = not isinstance(value, types) or (bool not in types and isinstance(value, bool))
    if wrong or (isinstance(value, float) and not math.isfinite(value)):
        return f"{key} must be {name}{' (or null)' if optional else ''}, got {value!r}"
    if "tuple[float" in str(annotation) and not all(_is_number(v) for v in value):
        return f"{key} must be a list of numbers, got {list(value)!r}"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range_of(key: str) -> tuple[float, float, bool] | None:
    if key in RANGES:
        return RANGES[key]
    return next((r for prefix, r in RANGE_PREFIXES.items() if key.startswith(prefix)), None)


def _range_problem(key: str, value) -> str | None:
    limits = _range_of(key)
    if limits is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    low, high, exclusive = limits
    too_low = value <= low if exclusive else value < low
    if too_low or value > high:
        return f"{key} must be {describe_range(low, high, exclusive)}, got {value!r}"
    return None


def describe_range(low: float, high: float, exclusive: bool) -> str:
    first = f"> {low:g}" if exclusive else f">= {low:g}"
    return first if math.isinf(high) else f"{first} and <= {high:g}"


def config_problem(config, prefix: str = "") -> str | None:
    """The first bad value of a config dataclass (nested ones included), as one line; None if good."""
    for item in fields(config):
        key, value = f"{prefix}{item.name}", getattr(config, item.name)
        if is_dataclass(value):
            problem = config_problem(value, f"{key}.")
        else:
            problem = _type_problem(key, value, item.type) or _range_problem(key, value)
        if problem:
            return problem
    return None
