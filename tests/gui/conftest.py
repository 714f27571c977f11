"""GUI fixtures: one real MainWindow per test module (reconstructing is the slow part), isolated
settings, screenshots into test-artifacts/, and a tiny test video.

pytest-xvfb gives the tests an X display (the VTK viewport does not render under
QT_QPA_PLATFORM=offscreen); without one, every GUI test is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_API", "pyside6")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SAMPLE = ROOT / "resources" / "samples" / "astronaut.png"


def _missing() -> str | None:
    for module in ("PySide6", "pyvistaqt", "pytestqt"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install -e .[app,test])"
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "needs an X display: install Xvfb (pytest-xvfb starts it) or run under xvfb-run"
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return "the VTK viewport cannot render under QT_QPA_PLATFORM=offscreen"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    for item in items:
        if "tests/gui" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.gui)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def model_key() -> str:
    """CEST when the shipped weights exist, else the landmark fit (tests must not need training)."""
    from engine.reconstruct.reconstructor import default_weights

    return "cest" if default_weights() is not None else "fit"


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory, request):
    from PySide6.QtCore import QSettings

    from cest_studio.main_window import MainWindow

    settings = QSettings(str(tmp_path_factory.mktemp("settings") / "studio.ini"), QSettings.Format.IniFormat)
    win = MainWindow(
        settings=settings, model=model_key(), threads=int(os.environ.get("CEST_TEST_THREADS", "2"))
    )
    win.resize(1280, 800)
    win.show()
    from pytestqt.qtbot import QtBot

    # start-up (engine and 3D view loading) is not what the tests measure: let it finish first
    QtBot(request).waitUntil(
        lambda: win.tab.viewport.is_ready and win.model_info is not None, timeout=120_000
    )
    yield win
    win.close()
    win.deleteLater()


def save_shot(win, name: str) -> Path:
    """The whole window (3D view included) as test-artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    win.grab_window().save(str(path))
    return path


def wait_viewport(qtbot, win, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: win.tab.viewport.is_ready and win.tab.viewport.has_mesh, timeout=timeout)


def open_and_wait(qtbot, win, path, timeout: int = 120_000):
    """Open a file through the window; wait for its face and its first preview."""
    with qtbot.waitSignal(win.face_ready, timeout=timeout) as face:
        win.open_path(str(path))
    qtbot.waitUntil(win.preview_settled, timeout=timeout)
    return face.args[0]
