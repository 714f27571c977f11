"""The file dialogs' filters come from the engine's one suffix list (engine/io/formats.py)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("PySide6")

from cest_studio import file_dialogs  # noqa: E402
from engine.io.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES  # noqa: E402


def _suffixes(filter_text: str) -> set[str]:
    return {f".{s}" for s in re.findall(r"\*\.(\w+)", filter_text)}


def test_filters_list_every_suffix_the_engine_reads():
    assert _suffixes(file_dialogs.image_filter()) == IMAGE_SUFFIXES
    assert _suffixes(file_dialogs.video_filter()) == VIDEO_SUFFIXES
    assert _suffixes(file_dialogs.media_filter()) == IMAGE_SUFFIXES | VIDEO_SUFFIXES
    assert file_dialogs.image_filter().startswith("Images (*.")
    assert file_dialogs.video_filter().startswith("Videos (*.")


def test_filters_are_stable_and_video_paths_are_recognised():
    assert file_dialogs.media_filter() == file_dialogs.media_filter()
    assert file_dialogs.filters("A (*.a)", file_dialogs.ALL_FILES) == "A (*.a);;All files (*)"
    assert file_dialogs.is_video_path("/x/clip.MP4") and not file_dialogs.is_video_path("/x/face.png")
