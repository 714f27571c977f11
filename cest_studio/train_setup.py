"""What the Train tab proposes before a run and shows during it: the run folder, the recipes, the
model to start from, and the sample grid with its columns named. Qt for the pictures; no maths."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QRect, QStandardPaths, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

BUILTIN_RECIPE = "Built-in fine-tuning recipe"
FINETUNE_RECIPE = "finetune.yaml"
# The columns of engine.train.Trainer.sample_grid, left to right.
SAMPLE_COLUMNS = ("input", "re-render", "swapped", "albedo", "shading", "normals")
SAMPLE_ROWS = 2  # faces the tab shows of a grid: two, large, rather than six tiny ones
HEADER = 24  # px of the column names above the samples


def default_runs_folder() -> Path:
    """~/.local/share/cest-studio/runs (the platform's data folder): one level, no spaces."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    return Path(base or Path.home() / ".local" / "share") / "cest-studio" / "runs"


def new_run_folder() -> Path:
    """A fresh folder named after this moment (called when Start is pressed)."""
    folder = default_runs_folder() / time.strftime("run-%Y%m%d-%H%M%S")
    n = 2
    while folder.exists():
        folder, n = folder.with_name(f"{folder.name.split('_')[0]}_{n}"), n + 1
    return folder


def holds_run(folder: Path) -> bool:
    return (folder / "checkpoint.pt").exists() or (folder / "status.json").exists()


def config_folder() -> Path | None:
    from engine.resources import resources_root

    folder = resources_root().parent / "configs"
    return folder if folder.is_dir() else None


def recipe_entries() -> list[tuple[str, str | None]]:
    """(name, path) of each recipe: the configs/*.yaml of a checkout and the shipped fine-tuning
    recipe (resources/recipes/finetune.yaml, what an installed app has), each listed once."""
    from engine.resources import resources_root

    folder = config_folder()
    entries = [(p.name, str(p)) for p in sorted(folder.glob("*.yaml"))] if folder else []
    shipped = resources_root() / "recipes" / FINETUNE_RECIPE
    if FINETUNE_RECIPE not in {name for name, _ in entries}:
        entries.append((FINETUNE_RECIPE, str(shipped)) if shipped.is_file() else (BUILTIN_RECIPE, None))
    return entries


def default_recipe(names: list[str]) -> str:
    return FINETUNE_RECIPE if FINETUNE_RECIPE in names else BUILTIN_RECIPE


def shipped_index(weights: list[str]) -> int:
    """Which of the models offered to start from is the shipped default (else the first)."""
    from engine.resources import (
        resources_root,  # light: engine.reconstruct.reconstructor would load torch before the window shows
    )

    shipped = (
        resources_root() / "weights" / "cest_default.safetensors"
    )  # engine.reconstruct.reconstructor.DEFAULT_WEIGHTS
    return next((i for i, path in enumerate(weights) if Path(path) == shipped), 0)


def sample_preview(grid: QImage, rows: int = SAMPLE_ROWS) -> QImage:
    """The first ``rows`` faces of a sample grid under a header naming its columns."""
    tile = max(1, grid.width() // len(SAMPLE_COLUMNS))
    scale = max(1, 160 // tile)  # small grids (64 px faces) drawn at 2x, so the names fit
    body = grid.copy(0, 0, grid.width(), min(grid.height(), rows * tile))
    body = body.scaled(
        body.width() * scale,
        body.height() * scale,
        Qt.AspectRatioMode.IgnoreAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    out = QImage(body.width(), body.height() + HEADER, QImage.Format.Format_RGB888)
    out.fill(QColor("#202326"))
    painter = QPainter(out)
    painter.drawImage(0, HEADER, body)
    painter.setPen(QColor("#e6e8ea"))
    font = QFont()
    font.setPixelSize(13)
    painter.setFont(font)
    for i, name in enumerate(SAMPLE_COLUMNS):
        painter.drawText(QRect(i * tile * scale, 0, tile * scale, HEADER), Qt.AlignmentFlag.AlignCenter, name)
    painter.end()
    return out
