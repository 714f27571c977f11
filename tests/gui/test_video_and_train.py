"""Videos in the window (background reconstruction, cancel, scrubbing, sequence export, event-loop
latency), the Train tab (start, stop, resume a tiny run in a child process; the result becomes a
model) and the start-up time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_video
from tests.gui.conftest import ARTIFACTS, ROOT, SAMPLE, open_and_wait, save_shot, wait_viewport

pytestmark = pytest.mark.gui


class LoopProbe:
    """A 10 ms QTimer: the longest gap between its ticks is the event loop's worst latency.

    A gap is the GUI thread either working (its CPU time in the gap: ``max_busy``) or waiting (for
    a core the OS gave another process, the X server, the interpreter lock). On a machine loaded
    beyond its cores by other work, even an idle Qt loop sees 100 ms gaps (measured here: a bare
    QTimer + progress bar beside a niced video job, max 121 ms), so the wall-clock limit is
    asserted only when the machine is not overloaded; ``max_busy`` is asserted always. The
    garbage collector's pauses are recorded too (they were a cause, before gc.freeze)."""

    def __init__(self):
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[int] = []
        self.long: list[tuple[int, int]] = []  # (at ms, gap ms) of gaps over 30 ms
        self.gc_pauses: list[tuple[int, int, int, str]] = []  # (at ms, generation, ms, thread)
        self._last = 0
        self._cpu = time.thread_time()
        self._gc_start = 0.0

    def _tick(self):
        now = self.clock.elapsed()
        cpu = time.thread_time()
        self.gaps.append(now - self._last)
        if now - self._last > 30 and len(self.gaps) > 1:
            # (when, gap, the GUI thread's own CPU time in the gap): a gap much longer than the CPU
            # time is waiting (for the GIL or for a core), not work
            self.long.append((now, now - self._last, round((cpu - self._cpu) * 1000)))
        self._last, self._cpu = now, cpu

    def _gc(self, phase, info):
        import threading

        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        ms = int((time.perf_counter() - self._gc_start) * 1000)
        if ms >= 5:
            self.gc_pauses.append(
                (self.clock.elapsed(), info["generation"], ms, threading.current_thread().name)
            )

    def __enter__(self):
        import gc

        self.started_at = round(time.perf_counter(), 3)
        gc.callbacks.append(self._gc)
        self.clock.start()
        self.timer.start()
        return self

    def __exit__(self, *exc):
        import gc

        self.timer.stop()
        gc.callbacks.remove(self._gc)

    def report(self) -> dict:
        return {
            "max_gap_ms": self.max_gap,
            "ticks": len(self.gaps),
            "gaps_over_30ms": self.long,
            "gc_pauses_over_5ms": self.gc_pauses,
        }

    @property
    def max_gap(self) -> int:
        return max(self.gaps[1:]) if len(self.gaps) > 1 else 0

    @property
    def max_busy(self) -> int:
        """The most CPU time the GUI thread spent inside one gap over 30 ms (its own work)."""
        return max((busy for _at, _gap, busy in self.long), default=0)

    def check(self, what: str, limit: int = 50) -> dict:
        load = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        figures = {
            **self.report(),
            "max_gui_busy_ms": self.max_busy,
            "load_average": round(load, 2),
            "cores": cores,
        }
        print(f"\nevent loop while {what}:", json.dumps(figures))
        # The GUI thread's own work between two ticks is what "blocking" is: asserted always.
        assert self.max_busy < limit, f"the GUI thread worked {self.max_busy} ms without a break ({what})"
        if load <= cores:
            # Wall-clock gaps also hold the time the OS gives the worker's child process on a 2-core
            # machine; a single late tick is scheduling, a pattern of them would be a stall.
            p99 = sorted(self.gaps[1:])[int(0.99 * (len(self.gaps) - 2))] if len(self.gaps) > 2 else 0
            figures["p99_gap_ms"] = p99
            assert p99 < limit, f"the event loop stalled: 99th percentile gap {p99} ms ({what})"
        else:
            print(
                f"machine overloaded (load {load:.1f} on {cores} cores): the wall-clock gap "
                f"{self.max_gap} ms includes time given to other processes; not asserted"
            )
        return figures


def test_video_background_reconstruction_scrub_export_and_latency(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, SAMPLE)  # a face on screen first, as when a person opens a video next
    wait_viewport(qtbot, window)
    video = make_video(tmp_path / "clip.mp4", frames=6)
    with LoopProbe() as probe:  # from opening the video to its last frame (a child process does the work)
        with qtbot.waitSignal(window.video_finished, timeout=240_000) as finished:
            window.open_path(str(video))
            qtbot.waitUntil(lambda: window.tab.timeline.active, timeout=5_000)
    summary = finished.args[0]
    assert summary["frames"] == 6 and summary["faces"] >= 5 and not summary["interrupted"]
    assert Path(summary["out_dir"], "reconstruction.mp4").stat().st_size > 0
    figures = probe.check("a video is reconstructed")
    figures["video_frames_per_s"] = summary.get("fps")
    figures["slow_gui_handlers"] = window.slow_ops[-10:]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "gui_video_figures.json").write_text(json.dumps(figures, indent=1))

    # scrubbing shows each frame's own reconstruction
    wait_viewport(qtbot, window)
    keys = set()
    for index in (0, 3, 5):
        window.tab.timeline.set_frame(index)
        qtbot.waitUntil(lambda i=index: window.face is not None and window.face.frame == i, timeout=10_000)
        qtbot.waitUntil(window.preview_settled, timeout=30_000)
        keys.add(window.face.key)
        assert window.tab.timeline.frame_label.text() == f"frame {index + 1} / 6"
    assert len(keys) == 3
    timeline = window.tab.timeline
    timeline.slider.setValue(2)  # a drag moves the slider itself: the counter follows
    assert timeline.frame_label.text() == "frame 3 / 6"
    timeline.toggle_play()
    assert not timeline.play_button.icon().isNull() and timeline.play_button.text() == ""  # no missing glyph
    timeline.toggle_play()
    timeline.progress.setRange(0, 75)
    timeline.progress.setValue(20)
    assert (
        timeline.progress.fontMetrics().horizontalAdvance(timeline.progress.text())
        < timeline.progress.width()
    )
    with qtbot.waitSignal(window.video_finished, timeout=5_000):  # a damaged file is not a plain success
        window._video_done(
            window._video, {**summary, "damaged": "skipped damaged data (x); 6 frames decoded"}
        )
    assert window.message.kind == "warning" and "damaged" in window.message.text()
    save_shot(window, "06_video_scrubbed")

    # the sequence exports as per-frame meshes and a re-rendered MP4, through the dialog's path
    dialog = window.export_dialog()
    dialog.folder.setText(str(tmp_path / "export"))
    for box in (dialog.obj, dialog.ply, dialog.glb, dialog.maps):
        box.setChecked(False)
    dialog.sequence_format.setCurrentText("ply")
    with qtbot.waitSignal(window.exported, timeout=180_000) as done:
        dialog.accept()
    paths = [Path(p) for p in done.args[0]]
    meshes = sorted((tmp_path / "export" / "sequence" / "meshes").glob("*.ply"))
    assert len(meshes) == summary["faces"]
    mp4 = tmp_path / "export" / "sequence" / "sequence.mp4"
    assert mp4 in paths and mp4.stat().st_size > 0
    from engine.io.video import probe as probe_video

    assert probe_video(mp4).frames == summary["faces"]


def test_video_cancel_and_corrupt_video(qtbot, window, tmp_path):
    video = make_video(tmp_path / "long.mp4", frames=40)
    with qtbot.waitSignal(window.face_ready, timeout=120_000):
        window.open_path(str(video))
    with qtbot.waitSignal(window.video_finished, timeout=60_000) as finished:
        window.tab.timeline.cancel_button.click()
    assert finished.args[0]["interrupted"] and finished.args[0]["frames"] < 40
    assert not window.tab.timeline.cancel_button.isVisible()

    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        window.open_path(str(corrupt))
    assert "broken.mp4" in err.args[0]
    assert "Traceback" not in window.message.text() and "Errno" not in window.message.text()
    timeline = window.tab.timeline
    assert timeline.frame_label.text() == "no video" and not timeline.play_button.isEnabled()
    open_and_wait(qtbot, window, SAMPLE)  # after a photo the handle rests at the start
    assert timeline.frame_label.text() == "no video" and timeline.slider.value() == 0
    assert timeline.slider.maximum() == 0


def _smoke_config() -> Path:
    path = ROOT / "configs" / "smoke.yaml"
    if not (ROOT / "engine" / "train.py").exists():
        pytest.skip("engine/train.py is not there yet")
    if not path.exists():
        pytest.skip("configs/smoke.yaml is not there yet")
    return path


def test_train_tab_start_stop_resume_and_the_model_appears(qtbot, window, tmp_path):
    _smoke_config()
    tab = window.train_tab
    window.tabs.setCurrentWidget(tab)
    tab.recipe.setCurrentIndex(tab.recipe.findText("smoke.yaml"))
    tab.start_model.setCurrentIndex(tab.start_model.findText("From scratch"))  # the smoke recipe's tiny model
    tab.steps.setValue(40)  # the smoke recipe checkpoints and samples every 10 steps
    tab.out_edit.setText(str(tmp_path / "run"))
    tab.videos.clear()
    with LoopProbe() as probe:  # the run starts and trains in its child process
        tab.start_button.click()
        qtbot.waitUntil(lambda: tab.running(), timeout=30_000)
        qtbot.waitUntil(lambda: int(tab.status.get("step") or 0) >= 3, timeout=240_000)
    save_shot(window, "07_training")
    with qtbot.waitSignal(tab.process.finished, timeout=60_000) as stopped:
        tab.stop_button.click()
    assert stopped.args[1] == "stopped"
    import torch

    at = int(tab.status["step"])
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == at, "Stop checkpoints"
    assert f"Stopped at step {at}" in tab.progress_label.text()
    assert f"step {at}" in window.statusBar().currentMessage()  # the new model's step is the plot's
    assert tab.loss_plot.series and tab.samples.array() is not None  # a sample, even before step 10
    assert tab.samples.array().shape[1] >= 6 * 128, "samples large enough to see"
    assert "--resume" not in tab.log.toPlainText()
    figures = probe.check("a training run goes")
    (ARTIFACTS / "gui_training_figures.json").write_text(json.dumps(figures, indent=1))

    steps_seen: list[int] = []
    tab.status_changed.connect(lambda status: steps_seen.append(int(status.get("step") or 0)))
    with qtbot.waitSignal(tab.model_trained, timeout=240_000) as trained:
        tab.resume_button.click()
    weights = trained.args[0]
    assert Path(weights).exists()
    assert tab.status.get("state") == "done" and tab.status.get("step") == 40
    assert tab.start_model.currentText() == "From scratch"  # the person's choice survives the new model
    assert steps_seen and min(steps_seen) >= at, f"Resume continues from step {at}: saw {steps_seen}"
    # resumed, not restarted (which step the window first sees depends on its polling's timing)
    assert "Resuming the run in" in tab.log.toPlainText()
    save_shot(window, "08_training_done")
    # the new model is selectable and remembered; switching re-runs the current face
    keys = [window.model_combo.itemData(i) for i in range(window.model_combo.count())]
    assert f"cest:{weights}" in keys
    assert weights in window.trained_models()
    window.tabs.setCurrentWidget(window.tab)
    open_and_wait(qtbot, window, SAMPLE)
    with qtbot.waitSignal(window.face_ready, timeout=120_000) as rerun:
        window.model_combo.setCurrentIndex(keys.index(f"cest:{weights}"))
        window._model_chosen(keys.index(f"cest:{weights}"))
    assert rerun.args[0].method == "cest"
    qtbot.waitUntil(window.preview_settled, timeout=30_000)
    with qtbot.waitSignal(window.face_ready, timeout=120_000) as back:
        window.model_combo.setCurrentIndex(keys.index("fit"))
        window._model_chosen(keys.index("fit"))
    assert back.args[0].method == "fit"


def test_a_failing_training_run_shows_its_error(qtbot, window, tmp_path):
    _smoke_config()
    tab = window.train_tab
    tab.recipe.setCurrentIndex(tab.recipe.findText("smoke.yaml"))
    tab.out_edit.setText(str(tmp_path / "bad"))
    tab.videos.clear()
    tab.videos.addItem(str(tmp_path / "no_such_video.mp4"))
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as err:
        tab.start_button.click()
    assert "no_such_video.mp4" in err.args[0]
    assert tab.start_button.isEnabled() and not tab.running()
    tab.videos.clear()


def test_window_opens_within_3_seconds(tmp_path):
    """The console script's window appears fast: heavy modules load after it shows."""
    env = dict(os.environ, QT_API="pyside6", CEST_STUDIO_SETTINGS=str(tmp_path / "settings.ini"))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "cest_studio", "--exit-after-show", "--model", "fit"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    total = time.perf_counter() - start
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("window shown in")), None)
    assert out.returncode == 0 and line, out.stderr[-2000:]
    shown = float(line.split()[3])
    print(f"\nwindow shown {shown:.2f} s after start (process ran {total:.1f} s in all)")
    assert shown < 3.0


def test_a_crashing_training_run_leaves_the_window_working(qtbot, window, tmp_path):
    import signal

    _smoke_config()
    tab = window.train_tab
    tab.recipe.setCurrentIndex(tab.recipe.findText("smoke.yaml"))
    tab.steps.setValue(500)
    tab.out_edit.setText(str(tmp_path / "crash"))
    tab.videos.clear()
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.running() and tab.status.get("step"), timeout=120_000)
    with qtbot.waitSignal(window.error_shown, timeout=30_000) as err:
        os.kill(tab.process._process.processId(), signal.SIGKILL)  # a crash: nothing the run can catch
    assert "crashed" in err.args[0]
    assert tab.start_button.isEnabled() and tab.resume_button.isEnabled() and not tab.running()
    assert window.isVisible()


def test_train_tab_defaults_folder_recipes_and_start_model(qtbot, window, tmp_path, monkeypatch):
    import cest_studio.train_setup as setup

    tab = window.train_tab
    runs = setup.default_runs_folder()
    assert " " not in str(runs) and str(runs).count("cest-studio") == 1
    names = [tab.recipe.itemText(i) for i in range(tab.recipe.count())]
    assert len(names) == len(set(names)) and not (
        setup.FINETUNE_RECIPE in names and setup.BUILTIN_RECIPE in names
    )
    from cest_studio.tasks import available_models
    from engine.reconstruct.reconstructor import default_weights

    tab.start_model.clear()  # as a new window has it
    tab.set_models(available_models())
    if default_weights() is not None:  # fine-tuning starts from the shipped model
        assert tab.start_model.currentData() == str(default_weights())
    # the folder is named when Start is pressed (here the run fails at once: its video is missing)
    monkeypatch.setattr(setup, "default_runs_folder", lambda: tmp_path / "runs")
    tab.out_edit.setText("")
    tab.videos.clear()
    tab.videos.addItem(str(tmp_path / "no_such_video.mp4"))
    before = time.strftime("run-%Y%m%d-%H%M%S")
    with qtbot.waitSignal(window.error_shown, timeout=60_000):
        tab.start_button.click()
    stamped = Path(tab.out_edit.text())
    assert stamped.parent == tmp_path / "runs" and stamped.name >= before
    # Start on a folder that holds a run proposes a fresh one and starts nothing
    used = tmp_path / "used"
    used.mkdir()
    (used / "checkpoint.pt").write_bytes(b"")
    tab.out_edit.setText(str(used))
    with qtbot.waitSignal(tab.notice, timeout=5_000) as notice:
        tab.start_button.click()
    assert "Press Start again" in notice.args[0] and not tab.running()
    assert Path(tab.out_edit.text()).parent == tmp_path / "runs"
    tab.videos.clear()
