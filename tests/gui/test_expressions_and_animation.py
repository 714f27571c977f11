"""Expression sliders (grouped by region, live in both views, reset to the estimate, exported) and
File > Export animation for a reconstructed video."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import make_video
from tests.gui.conftest import SAMPLE, open_and_wait, save_shot, wait_viewport

pytestmark = pytest.mark.gui


def _images(win):
    return win.tab.render_view.array().copy(), win.tab.viewport.image()


def _changed(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.abs(before.astype(np.int16) - after.astype(np.int16)).mean())


def test_expression_sliders_edit_reset_and_export(qtbot, window, tmp_path):
    face = open_and_wait(qtbot, window, SAMPLE)
    wait_viewport(qtbot, window)
    panel = window.tab.controls.expressions
    assert set(panel.groups) == {"brows", "eyes", "cheeks", "mouth", "jaw"}
    assert len(panel.sliders) == len(face.expression_names) == 53
    jaw = face.expression_names.index("jawOpen")
    assert panel.values()[jaw] == pytest.approx(face.expression[jaw], abs=0.006)  # shows the estimate
    before_2d, before_3d = _images(window)
    panel.slider("jawOpen").set_value(0.9)
    qtbot.waitUntil(window.preview_settled, timeout=30_000)
    after_2d, after_3d = _images(window)
    assert window.tab.controls.state().expression[jaw] == pytest.approx(0.9)
    assert _changed(before_2d, after_2d) > 0.3 and _changed(before_3d, after_3d) > 0.3
    save_shot(window, "10_expression_jaw_open")

    dialog = window.export_dialog()
    dialog.folder.setText(str(tmp_path / "out"))
    for box in (dialog.ply, dialog.glb, dialog.screenshot, dialog.bake):
        box.setChecked(False)
    with qtbot.waitSignal(window.exported, timeout=120_000):
        dialog.accept()
    params = json.loads((tmp_path / "out" / "face_params.json").read_text())
    assert params["expression"][jaw] == pytest.approx(0.9, abs=1e-6)

    panel.reset_button.click()
    qtbot.waitUntil(window.preview_settled, timeout=30_000)
    assert window.tab.controls.state().expression is None
    assert panel.values()[jaw] == pytest.approx(face.expression[jaw], abs=0.006)
    assert _changed(before_2d, _images(window)[0]) < 0.3  # back to the estimate


def test_export_animation_of_a_video(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, SAMPLE)
    assert window.animation.available() is not None  # a photo has no animation
    video = make_video(tmp_path / "clip.mp4", frames=5)
    with qtbot.waitSignal(window.video_finished, timeout=240_000) as finished:
        window.open_path(str(video))
    faces = finished.args[0]["faces"]
    with qtbot.waitSignal(window.animation.exported, timeout=120_000) as done:
        window.animation.export_to(str(tmp_path / "anim"))
    names = sorted(p.split("/")[-1] for p in done.args[0])
    assert names == ["animation.glb", "blendshapes.csv"]
    with open(tmp_path / "anim" / "blendshapes.csv") as file:
        rows = list(csv.reader(file))
    assert rows[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(rows) == 1 + 5
    pygltflib = pytest.importorskip("pygltflib")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "anim" / "animation.glb"))
    assert len(gltf.meshes[0].primitives[0].targets) == 53
    assert gltf.accessors[gltf.animations[0].samplers[0].input].count >= faces


def test_second_face_expression_transfer(qtbot, window, tmp_path):
    from PIL import Image

    from engine.io.image import load_image

    open_and_wait(qtbot, window, SAMPLE)
    wait_viewport(qtbot, window)
    other = tmp_path / "mirrored.png"
    Image.fromarray(np.ascontiguousarray(load_image(SAMPLE)[:, ::-1])).save(other)
    with qtbot.waitSignal(window.second_face_ready, timeout=120_000) as ready:
        window.open_second(str(other))
    second = ready.args[0]
    panel = window.tab.controls.expressions
    assert panel.second_button.isEnabled()
    panel.second_button.click()
    qtbot.waitUntil(window.preview_settled, timeout=30_000)
    np.testing.assert_allclose(window.tab.controls.state().expression, second.expression, atol=0.006)
