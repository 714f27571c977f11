"""The training configuration: dataclasses, YAML loading with checked values, --set overrides."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from engine.config_check import config_problem
from engine.errors import CestError
from engine.model.chain import CestConfig
from engine.training.data.mixture import DataConfig
from engine.training.losses import LossWeights


class TrainingError(CestError, RuntimeError):
    """Training cannot go on (full disk, bad config, no data); the message says what to do."""


@dataclass
class OptimConfig:
    steps: int = 3000
    lr: float = 3e-4
    lr_min_fraction: float = 0.1  # cosine decay to lr * this
    warmup_steps: int = 50
    warm_start_steps: int = 0  # synthetic-only batches first
    grad_clip: float = 5.0
    weight_decay: float = 0.0


@dataclass
class LogConfig:
    every: int = 10
    samples_every: int = 200
    checkpoint_every: int = 200
    samples: int = 6  # faces in a sample grid
    progress_bar: bool = True


@dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 1  # torch threads per process (more threads than free cores slow training down badly)
    device: str = "cpu"
    model: CestConfig = field(default_factory=CestConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build and check a config: a wrong key, type or value is a TrainingError naming the key."""
        if not isinstance(values, dict):
            raise TrainingError(
                f"a training config is a mapping of settings (key: value), not {type(values).__name__}"
            )
        values = dict(values)
        parts = {
            "model": CestConfig.from_dict,
            "losses": LossWeights.from_dict,
            "data": DataConfig.from_dict,
            "optim": lambda v: _plain(OptimConfig, v),
            "log": lambda v: _plain(LogConfig, v),
        }
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TrainingError(f"unknown config keys: {sorted(unknown)}")
        for key in parts:
            if not isinstance(values.get(key) or {}, dict):
                raise TrainingError(
                    f"config section {key} must be a mapping (key: value), got {values[key]!r}"
                )
        try:
            built = {k: parts[k](values.pop(k) or {}) for k in list(values) if k in parts}
            config = cls(**values, **built)
        except (TypeError, ValueError) as err:
            raise TrainingError(f"bad training config: {err}") from err
        problem = config_problem(config)
        if problem:
            raise TrainingError(f"bad training config: {problem}")
        return config

    def to_dict(self) -> dict:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return out


def _plain(cls, values: dict):
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**values)


def read_yaml(path: Path):
    """The YAML document in ``path``; malformed YAML is a one-line TrainingError with its position."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TrainingError(f"{path} is not valid YAML{where}: {reason}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise TrainingError(f"cannot read config {path}: {err}") from err


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """A YAML training config, with optional nested overrides ({"optim": {"steps": 10}})."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no config file at {path}")
    values = read_yaml(path)
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise TrainingError(
            f"{path} must hold a mapping of settings (key: value), not a {type(values).__name__}"
        )
    return TrainConfig.from_dict(merge_dicts(values, overrides or {}))


def merge_dicts(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = (
            merge_dicts(current if isinstance(current, dict) else {}, value)
            if isinstance(value, dict)
            else value
        )
    return out


def parse_overrides(items: list[str]) -> dict:
    """["model.conditional=false", ...] -> {"model": {"conditional": False}} (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TrainingError(f"--set wants KEY=VALUE, got {item!r}")
        nested: dict = {}
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise TrainingError(f"--set {key}: cannot parse {value!r}") from err
        out = merge_dicts(out, nested)
    return out


def lr_at(step: int, cfg: OptimConfig) -> float:
    """The learning rate at ``step``: linear warm-up, then cosine decay to ``lr_min_fraction``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.lr_min_fraction + (1 - cfg.lr_min_fraction) * cosine)
