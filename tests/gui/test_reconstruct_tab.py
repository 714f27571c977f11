"""The real window: open the sample, move every control and see both the 2D re-render and the 3D
viewport change, borrow a second face, export through the dialog's path, survive bad files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.gui.conftest import ARTIFACTS, SAMPLE, open_and_wait, save_shot, wait_viewport

pytestmark = pytest.mark.gui


def _images(win):
    return win.tab.render_view.array().copy(), win.tab.viewport.image()


def _changed(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute difference (0..255) between two images of the same size."""
    assert before.shape == after.shape
    return float(np.abs(before.astype(np.int16) - after.astype(np.int16)).mean())


def _move(qtbot, win, action, timeout=30_000):
    """Apply ``action`` (a control change) and wait until its frame is on screen."""
    action()
    qtbot.waitUntil(win.preview_settled, timeout=timeout)


@pytest.fixture(scope="module")
def opened(window, request):
    from pytestqt.qtbot import QtBot

    qtbot = QtBot(request)
    face = open_and_wait(qtbot, window, SAMPLE)
    wait_viewport(qtbot, window)
    return face


def test_open_sample_shows_input_render_and_viewport(qtbot, window, opened):
    face = opened
    assert face.landmarks.shape == (68, 2)
    assert window.tab.input_view.array() is not None
    render, view = _images(window)
    assert render.shape[2] == 3 and render.std() > 10  # a face, not a blank
    assert view.std() > 10
    assert window.tab.controls.isEnabled()
    assert window.export_action.isEnabled()
    assert not window.message.isVisible()
    save_shot(window, "01_sample_opened")


@pytest.mark.parametrize(
    "name, value",
    [
        ("azimuth", 75),
        ("elevation", -40),
        ("intensity", 1.6),
        ("ambient", 0.1),
        ("yaw", 35),
        ("pitch", -20),
        ("roll", 25),
    ],
)
def test_each_slider_changes_render_and_viewport(qtbot, window, opened, name, value):
    slider = window.tab.controls.sliders()[name]
    before_2d, before_3d = _images(window)
    _move(qtbot, window, lambda: slider.slider.setValue(int(round((value - slider._min) / slider._step))))
    after_2d, after_3d = _images(window)
    assert abs(slider.value() - value) < 1e-6
    assert _changed(before_2d, after_2d) > 0.3, f"{name}: the 2D re-render did not change"
    assert _changed(before_3d, after_3d) > 0.3, f"{name}: the 3D viewport did not change"
    if name in ("azimuth", "yaw"):
        save_shot(window, f"02_slider_{name}")


def test_colour_presets_views_and_resets(qtbot, window, opened):
    controls = window.tab.controls
    assert controls.has_presets()
    before_2d, before_3d = _images(window)
    _move(qtbot, window, lambda: controls.set_color((1.0, 0.55, 0.3)))
    after_2d, after_3d = _images(window)
    assert _changed(before_2d, after_2d) > 0.3 and _changed(before_3d, after_3d) > 0.3
    rim = controls.preset.findText("Rim")
    _move(qtbot, window, lambda: (controls.preset.setCurrentIndex(rim), controls.preset.activated.emit(rim)))
    assert controls.state().light_mode == "settings"
    assert controls.preset.currentText() == "Rim" and "Rim" in controls.light_label.text()  # it stays chosen
    for view in ("albedo", "shading", "normals", "render"):
        before_2d, before_3d = _images(window)
        button = controls.findChild(type(controls.view_buttons.buttons()[0]), f"view_{view}")
        _move(qtbot, window, lambda b=button: b.setChecked(True))
        after_2d, after_3d = _images(window)
        assert _changed(before_2d, after_2d) > 0.3, view
        assert _changed(before_3d, after_3d) > 0.3, view
        if view != "render":
            save_shot(window, f"03_view_{view}")
    _move(qtbot, window, controls.reset_pose)
    assert controls.state().pose is None
    assert controls.yaw.value() == pytest.approx(round(opened.pose[1]), abs=1)
    _move(qtbot, window, controls.use_estimated_light)
    assert controls.state().light_mode == "estimated"
    assert controls.preset.currentIndex() == 0 and "estimated" in controls.light_label.text()


def test_second_face_swap_blend_and_light(qtbot, window, opened, tmp_path):
    import matplotlib.cbook

    path = tmp_path / "grace_hopper.jpg"
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as src:
        path.write_bytes(src.read())
    with qtbot.waitSignal(window.second_face_ready, timeout=120_000):
        window.open_second(str(path))
    qtbot.waitUntil(window.preview_settled)
    controls = window.tab.controls
    assert controls.blend.isEnabled()
    before_2d, before_3d = _images(window)
    _move(qtbot, window, controls.swap_button.click)
    after_2d, after_3d = _images(window)
    assert controls.state().blend == pytest.approx(1.0)
    assert _changed(before_2d, after_2d) > 0.3 and _changed(before_3d, after_3d) > 0.3
    save_shot(window, "04_reflectance_swapped")
    _move(qtbot, window, lambda: controls.blend.set_value(40))
    assert controls.state().blend == pytest.approx(0.4)
    before_2d, before_3d = _images(window)
    _move(qtbot, window, controls.second_light_button.click)
    assert controls.state().light_mode == "other"
    after_2d, after_3d = _images(window)
    assert _changed(before_2d, after_2d) > 0.05 or _changed(before_3d, after_3d) > 0.05
    _move(qtbot, window, controls.own_button.click)
    _move(qtbot, window, controls.use_estimated_light)


def test_export_through_the_dialog(qtbot, window, opened, tmp_path):
    import trimesh

    from tests.gui.conftest import ROOT

    dialog = window.export_dialog()
    assert dialog is not None
    first = Path(dialog.folder.text())
    assert ROOT not in first.parents and first.name == "astronaut_export", first  # not inside the repository
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.name.setText("astro")
    dialog.bake.setChecked(False)
    with qtbot.waitSignal(window.exported, timeout=120_000) as done:
        dialog.accept()  # the OK button's path: accepted -> MainWindow.export_to(dialog.options())
    files = {p.split("/")[-1] for p in done.args[0]}
    out = tmp_path / "out"
    for name in (
        "astro.obj",
        "astro.mtl",
        "astro.ply",
        "astro.glb",
        "astro_3d_view.png",
        "astro_map_render.png",
        "astro_albedo.png",
        "astro_map_albedo.png",
        "astro_map_shading.png",
        "astro_map_normals.png",
        "astro_map_depth.png",
        "astro_params.json",
    ):
        assert name in files, name
        assert (out / name).stat().st_size > 0, name
    mesh = trimesh.load(out / "astro.obj", force="mesh", process=False)
    assert len(mesh.vertices) == opened.model.n_vertices
    assert mesh.visual.uv is not None and mesh.visual.material.image is not None
    glb = trimesh.load(out / "astro.glb", force="mesh", process=False)
    assert len(glb.faces) == opened.model.faces.shape[0]
    uv_texture = np.asarray(glb.visual.material.baseColorTexture.convert("RGB"))
    assert np.array_equal(np.asarray(mesh.visual.material.image.convert("RGB")), uv_texture)
    assert len(done.args[0]) == len(set(done.args[0])) == len([p for p in out.iterdir() if p.is_file()])
    params = json.loads((out / "astro_params.json").read_text())
    assert len(params["sh_light_9x3"]) == 9
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"
    again = window.export_dialog()  # the last folder used is proposed again
    assert Path(again.folder.text()) == out.resolve()
    again.reject()


def test_bad_files_show_a_message_and_the_window_stays_usable(qtbot, window, opened, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not an image")
    window.message.hide()
    top = window.tab.mapTo(window, window.tab.rect().topLeft()).y()
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        window.open_path(str(fake))
    qtbot.wait(50)
    assert window.tab.mapTo(window, window.tab.rect().topLeft()).y() == top, "the error bar pushed the layout"
    assert "holiday.jpg" in err.args[0] and "image" in err.args[0]
    assert window.message.isVisible() and "holiday.jpg" in window.message.text()
    assert "Traceback" not in window.message.text()
    save_shot(window, "05_error_not_an_image")

    blank = tmp_path / "no_face.png"
    from PIL import Image

    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(blank))])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        window.dropEvent(event)  # drag and drop goes through the same open path
    assert "no face" in err.args[0].lower()
    assert "still showing astronaut.png" in err.args[0]  # says what the screen shows

    missing = tmp_path / "gone.mp4"
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        window.open_path(str(missing))
    assert "gone.mp4" in err.args[0]

    # still usable: the last good face is still there and still responds
    assert window.face is not None
    before_2d, before_3d = _images(window)
    _move(qtbot, window, lambda: window.tab.controls.azimuth.set_value(-100))
    after_2d, _after_3d = _images(window)
    assert _changed(before_2d, after_2d) > 0.3
    assert str(blank) not in window.recent_files() and str(fake) not in window.recent_files()
    assert str(SAMPLE) in window.recent_files()


def test_recent_files_keep_absolute_paths(qtbot, window, opened, monkeypatch):
    import os

    monkeypatch.chdir(SAMPLE.parent.parent)
    relative = os.path.relpath(SAMPLE)
    assert not os.path.isabs(relative)
    open_and_wait(qtbot, window, relative)
    assert window.recent_files()[0] == str(SAMPLE)
    assert all(os.path.isabs(p) for p in window.recent_files())


def test_shortcuts_and_settings(window, opened):
    from PySide6.QtGui import QKeySequence

    shortcuts = {a.shortcut().toString() for a in window.actions()}
    for key in ("Ctrl+O", "Ctrl+E", "R", "Ctrl+Q"):
        assert QKeySequence(key).toString() in shortcuts, key
    assert window.settings.value("model/current") in ("fit",) or str(
        window.settings.value("model/current")
    ).startswith("cest:")
    assert window.settings.value("files/last_folder")


def test_viewport_frame_time_while_a_light_slider_moves(qtbot, window, opened):
    """Drag the azimuth slider for ~2 s; report the viewport's frame time and the slider->frame latency."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    viewport = window.tab.viewport
    viewport.frame_times.clear()
    window.latencies.clear()
    controls = window.tab.controls
    gaps, clock, last = [], QElapsedTimer(), [0]
    clock.start()
    probe = QTimer()
    probe.setInterval(10)

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    probe.timeout.connect(tick)
    probe.start()
    positions = list(range(-150, 151, 6))
    start = time.perf_counter()
    for value in positions:
        controls.azimuth.set_value(value)
        qtbot.wait(30)
    qtbot.waitUntil(window.preview_settled, timeout=30_000)
    qtbot.wait(200)
    probe.stop()
    seconds = time.perf_counter() - start
    frames = list(viewport.frame_times)
    latencies = list(window.latencies)
    figures = {
        "slider_moves": len(positions),
        "frames_shown": len(latencies),
        "moves_dropped_as_stale": window.preview.dropped,
        "seconds": round(seconds, 2),
        "viewport_frame_ms_median": round(float(np.median(frames)), 1),
        "viewport_frame_ms_max": round(float(np.max(frames)), 1),
        "slider_to_frame_ms_median": round(float(np.median(latencies)), 1),
        "slider_to_frame_ms_p90": round(float(np.percentile(latencies, 90)), 1),
        "event_loop_max_gap_ms": int(max(gaps[1:])),
    }
    print("\nviewport while a light slider moves:", json.dumps(figures))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "gui_slider_figures.json").write_text(json.dumps(figures, indent=1))
    assert len(latencies) >= 5
    assert figures["viewport_frame_ms_median"] < 200


def _hostile_inputs(tmp_path):
    from PIL import Image

    from engine.io.image import load_image

    sample = load_image(SAMPLE)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(sample).save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    tiny = tmp_path / "tiny.png"
    Image.fromarray(sample[200:220, 200:220]).save(tiny)
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    odd = tmp_path / "visage d'été – ünïcode.png"
    Image.fromarray(sample).convert("RGBA").save(odd)
    return {
        "empty": (empty, "error"),
        "truncated": (truncated, "either"),
        "tiny": (tiny, "error"),
        "folder": (folder, "error"),
        "unicode path, alpha": (odd, "face"),
    }


def test_hostile_inputs_give_a_message_or_a_face(qtbot, window, opened, tmp_path):
    """Issue 7's inputs through the window: one clear line or a face; the window stays usable."""
    for name, (path, expect) in _hostile_inputs(tmp_path).items():
        outcome = {}
        window.error_shown.connect(lambda m, o=outcome: o.setdefault("error", m))
        window.face_ready.connect(lambda f, o=outcome: o.setdefault("face", f))
        try:
            window.open_path(str(path))
            qtbot.waitUntil(lambda o=outcome: bool(o), timeout=120_000)
        finally:
            window.error_shown.disconnect()
            window.face_ready.disconnect()
        if expect == "error":
            assert "error" in outcome, name
        elif expect == "face":
            assert "face" in outcome, (name, outcome.get("error"))
        message = outcome.get("error", "")
        assert "Traceback" not in message and "\n" not in message, (name, message)
        if message:
            assert path.name in message or "face" in message.lower(), (name, message)
    qtbot.waitUntil(window.preview_settled, timeout=60_000)
    _move(qtbot, window, lambda: window.tab.controls.azimuth.set_value(20))
    assert window.preview_settled()


def test_a_broken_model_file_shows_an_error_and_keeps_the_model(qtbot, window, opened, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 64)
    before = window.model_info.spec.key
    window.add_trained_model(str(bad), "broken")
    index = window.model_combo.findData(f"cest:{bad}")
    assert index >= 0
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        window.model_combo.setCurrentIndex(index)
        window._model_chosen(index)
    assert "broken" in err.args[0] and "Traceback" not in err.args[0]
    assert window.model_info.spec.key == before
    assert window.model_combo.currentData() == before
    window.settings.setValue("models/trained", [])
    window.refresh_models(before)


def test_settings_are_remembered_by_the_next_window(qtbot, window, opened, tmp_path):
    import shutil

    from PySide6.QtCore import QSettings

    from cest_studio.main_window import MainWindow

    window.settings.sync()
    copy = tmp_path / "copy.ini"
    shutil.copy(window.settings.fileName(), copy)
    settings = QSettings(str(copy), QSettings.Format.IniFormat)
    second = MainWindow(settings=settings, threads=1)
    third = None
    try:
        assert second.model_combo.currentData() == window.model_info.spec.key
        assert second.recent_files() == window.recent_files() and second.recent_menu.actions()
        second.resize(701, 502)  # within pytest-xvfb's 800x600 screen (Qt keeps windows on screen)
        second.close()  # saves the layout
        third = MainWindow(settings=settings, threads=1)
        assert (third.width(), third.height()) == (701, 502)
    finally:
        second.close()
        if third is not None:
            third.close()
