"""The live camera (File > Live camera or stream…), with a video file played as a paced live source
(no camera exists on the test machines): the reconstruction follows the face, the controls work on
the live face, a recording becomes animation.glb + blendshapes.csv, frames the machine has no time
for are dropped (never queued), the window stays responsive, Stop stops, and a source that will not
open is one error line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.gui.conftest import ARTIFACTS, SAMPLE, save_shot
from tests.gui.test_video_and_train import LoopProbe

pytestmark = pytest.mark.gui


def _live_clip(path, seconds: float = 30.0, fps: int = 15):
    """The sample face swaying a little (it stays in view), long enough to stop half-way."""
    from engine.io.image import load_image
    from engine.io.video import VideoWriter

    image = load_image(SAMPLE)[::2, ::2]  # 256 x 256: cheap to decode
    with VideoWriter(path, fps) as writer:
        for i in range(int(seconds * fps)):
            writer.write(np.ascontiguousarray(np.roll(image, int(8 * np.sin(i / 6)), axis=1)))
    return path


def test_live_source_follows_the_face_with_the_controls_records_and_stops(qtbot, window, tmp_path):
    clip = _live_clip(tmp_path / "live.mp4")
    record = tmp_path / "recording"
    live = window.live
    with qtbot.waitSignal(live.finished, timeout=180_000) as finished:
        with LoopProbe() as probe:  # the event loop while the live face is followed and edited
            live.start(str(clip), record_to=str(record))
            qtbot.waitUntil(lambda: live.shown >= 3, timeout=120_000)
            assert live.active and window.face is not None and window.face.source.startswith("live ")
            # a control moved while live holds on every new frame; the rest follows the face
            panel = window.tab.controls.expressions
            jaw = window.face.expression_names.index("jawOpen")
            panel.slider("jawOpen").set_value(0.9)
            shown, key = live.shown, window.face.key
            qtbot.waitUntil(lambda: live.shown >= shown + 3, timeout=60_000)
            qtbot.waitUntil(  # a later live frame, rendered with the override
                lambda: (
                    (last := getattr(window, "_last_frame", None)) is not None
                    and last.face_key > key
                    and last.state.expression is not None
                ),
                timeout=30_000,
            )
        assert window._last_frame.state.expression[jaw] == pytest.approx(0.9)
        save_shot(window, "20_live_view")
        live.stop()
    stats = finished.args[0]
    assert "error" not in stats, stats
    panel.reset_button.click()
    assert not live.active and not live.stop_action.isEnabled()
    # stopped half-way: the source had more to play
    assert stats["read"] < 30 * 15
    # the slow consumer's frames were dropped, not queued: every frame read was processed, dropped,
    # or in hand when it stopped (the newest in the source, the one whose face was found next)
    assert 0 <= stats["read"] - stats["frames"] - stats["dropped"] <= 2
    assert stats["faces"] >= 5 and live.shown >= 5
    assert live.slot.put_count == live.shown + live.slot.replaced + (live.slot.take() is not None)
    # the recording: the CLI's animation outputs, one CSV row per recorded frame
    lines = (record / "frames.jsonl").read_text().splitlines()
    assert len(lines) >= 5 and all(json.loads(line)["face"] for line in lines)
    with open(record / "blendshapes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "Timecode" and len(rows) - 1 == len(lines)
    assert (record / "animation.glb").stat().st_size > 10_000
    # 80 ms held on earlier machines; on 2026-12-03's slow 2-core Xeon (`cest bench` detect 25 ms,
    # 2.4x the usual) the GUI thread's longest burst of work here measured 83-103 ms, with the
    # previous landmark refiner too: drawing each live frame into the viewport is the GUI's work
    figures = probe.check("a live source is reconstructed", limit=150)
    figures.update({k: stats[k] for k in ("frames", "faces", "read", "dropped", "fps")})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "live_figures.json").write_text(json.dumps(figures, indent=1))


def test_a_camera_or_url_that_will_not_open_is_one_error_line(qtbot, window, tmp_path):
    for spec, expected in (
        ("7", "cannot open camera 7"),
        ("rtsp://127.0.0.1:9/none", "cannot open the live source rtsp://127.0.0.1:9/none"),
        (str(tmp_path / "missing.mp4"), "no such file"),
    ):
        with qtbot.waitSignal(window.error_shown, timeout=60_000) as shown:
            window.live.start(spec)
        message = shown.args[0]
        assert message.startswith(f"live {spec}: ") and expected in message, message
        assert "\n" not in message and "Traceback" not in message
        qtbot.waitUntil(lambda: not window.live.active, timeout=10_000)
        assert not window.live.stop_action.isEnabled()
