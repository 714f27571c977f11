"""The window's actions and menus are tables: every entry names a real slot and a real action, and
the dialogs they open offer the engine's suffixes."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from cest_studio import file_dialogs  # noqa: E402
from cest_studio.menus import ACTIONS, MENUS, RECENT, TOOLBAR  # noqa: E402


def test_every_action_calls_a_slot_of_the_window():
    from cest_studio.main_window import MainWindow

    for spec in ACTIONS:
        head, *rest = spec.slot.split(".")
        if rest:  # a part the window builds in __init__ (tab, animation, live)
            assert head in ("tab", "animation", "live"), spec
            if head == "live":  # the live camera's controller (cest_studio/live_view.py)
                from cest_studio.live_view import LiveController

                assert callable(getattr(LiveController, rest[0], None)), spec
        else:
            assert callable(getattr(MainWindow, head, None)), spec


def test_menus_and_toolbar_name_declared_actions_once():
    names = [spec.name for spec in ACTIONS]
    assert len(names) == len(set(names))
    entries = [e for _, items in MENUS for e in items if e not in (None, RECENT)]
    assert set(entries) <= set(names) and set(TOOLBAR) <= set(names)
    assert set(names) <= set(entries)  # every action is reachable from a menu
    shortcuts = [str(spec.shortcut) for spec in ACTIONS if spec.shortcut is not None]
    assert len(shortcuts) == len(set(shortcuts))


def test_the_open_dialogs_offer_the_engine_suffixes(monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from engine.io.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    seen = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: seen.append(a[3]) or ("", ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a: seen.append(a[3]) or ([], ""))
    assert file_dialogs.open_media(None, "/") == ""
    assert file_dialogs.open_second_face(None, "/") == ""
    assert file_dialogs.open_training_videos(None, "/") == []
    media, second, videos = seen
    assert all(f"*{s}" in media for s in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    assert all(f"*{s}" in second for s in IMAGE_SUFFIXES) and "*.mp4" not in second
    assert all(f"*{s}" in videos for s in VIDEO_SUFFIXES) and "*.png" not in videos
