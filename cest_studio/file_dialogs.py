"""The app's file dialogs and their suffix filters.

The filters are built from the engine's one suffix list (engine/io/formats.py), so a format the
engine learns to read appears in every dialog. They are built when a dialog opens: importing this
module (the window does at start) loads no engine module.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

ALL_FILES = "All files (*)"
WEIGHTS_SUFFIXES = (".safetensors",)


def name_filter(label: str, suffixes: Iterable[str]) -> str:
    """``Label (*.a *.b)`` for Qt's file dialogs, the suffixes in the order given."""
    return f"{label} ({' '.join(f'*{s}' for s in suffixes)})"


def image_filter() -> str:
    from engine.io.formats import IMAGE_SUFFIXES

    return name_filter("Images", sorted(IMAGE_SUFFIXES))


def video_filter() -> str:
    from engine.io.formats import VIDEO_SUFFIXES

    return name_filter("Videos", sorted(VIDEO_SUFFIXES))


def media_filter() -> str:
    """Photos and videos in one filter (images first)."""
    from engine.io.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    return name_filter("Photos and videos", [*sorted(IMAGE_SUFFIXES), *sorted(VIDEO_SUFFIXES)])


def filters(*names: str) -> str:
    """Qt's ``;;``-joined filter list."""
    return ";;".join(names)


def is_video_path(path: str | Path) -> bool:
    from engine.io.formats import is_video

    return is_video(path)


def open_media(parent: QWidget, folder: str) -> str:
    """A photo or a video to reconstruct ("" when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(
        parent,
        "Open a photo or a video",
        folder,
        filters(media_filter(), image_filter(), video_filter(), ALL_FILES),
    )
    return path


def open_second_face(parent: QWidget, folder: str) -> str:
    path, _ = QFileDialog.getOpenFileName(
        parent, "Second face (its reflectance or light)", folder, filters(image_filter(), ALL_FILES)
    )
    return path


def open_weights(parent: QWidget, folder: str) -> str:
    path, _ = QFileDialog.getOpenFileName(
        parent, "CEST weights", folder, name_filter("CEST weights", WEIGHTS_SUFFIXES)
    )
    return path


def save_screenshot(parent: QWidget, folder: str) -> str:
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save the 3D view", str(Path(folder) / "view.png"), name_filter("PNG", [".png"])
    )
    return path


def open_training_videos(parent: QWidget, folder: str) -> list[str]:
    files, _ = QFileDialog.getOpenFileNames(
        parent, "Videos to train on", folder, filters(video_filter(), ALL_FILES)
    )
    return files


def choose_folder(parent: QWidget, title: str, folder: str) -> str:
    return QFileDialog.getExistingDirectory(parent, title, folder)
