"""``cest-studio [PHOTO_OR_VIDEO]``: open the window (within a few seconds: the engine, torch and VTK
load on background threads after it shows), then reconstruct the file if one was given."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

_START = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cest-studio", description="CEST Studio: 3D faces from photos and videos"
    )
    parser.add_argument("path", nargs="?", help="a photo or a video to open")
    parser.add_argument(
        "--model",
        default=None,
        help="'fit' (landmark fit), 'cest' (the shipped weights) or a .safetensors file",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--detector", default="auto", help="face detector backend")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the engine")
    parser.add_argument("--sample", action="store_true", help="open the bundled sample face")
    parser.add_argument("--exit-after-show", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--screenshot",
        default=None,
        metavar="PNG",
        help="save a picture of the window once the face and its 3D view are shown, then quit",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def _model_key(model: str | None) -> str | None:
    if model is None or model in ("fit", "cest"):
        return model
    path = Path(model).expanduser().resolve()
    return f"cest:{path}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--selftest" in argv:  # cest_studio/selftest.py: check an installation, no window needed
        from cest_studio.selftest import main as selftest

        return selftest(argv)
    args, qt_args = build_parser().parse_known_args(argv)
    if args.version:
        from cest_studio import __version__

        print(f"cest-studio {__version__}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        print(
            "cest-studio needs a display (no DISPLAY or WAYLAND_DISPLAY is set). On a server, run it "
            "under xvfb-run, or use the command line: cest reconstruct PHOTO -o OUT",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("QT_API", "pyside6")
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName("CEST Studio")
    app.setApplicationName("CEST Studio")
    app.setDesktopFileName("cest-studio")  # groups the window under its menu entry
    _set_window_icon(app)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)

    from cest_studio.main_window import MainWindow

    settings_file = os.environ.get(
        "CEST_STUDIO_SETTINGS"
    )  # tests and portable installs: an .ini of one's own
    settings = QSettings(settings_file, QSettings.Format.IniFormat) if settings_file else None
    window = MainWindow(
        settings=settings,
        model=_model_key(args.model),
        device=args.device,
        detector=args.detector,
        threads=args.threads,
    )
    _install_excepthook(window)
    window.show()
    shown = time.perf_counter() - _START
    logging.getLogger("cest_studio").info("window shown %.2f s after start", shown)
    if args.exit_after_show:
        QTimer.singleShot(0, lambda: (print(f"window shown in {shown:.2f} s", flush=True), window.close()))
        return app.exec()
    path = args.path
    if args.sample and not path:
        from engine.resources import resources_root

        path = str(resources_root() / "samples" / "astronaut.png")
    if path:
        window.open_path(path)
    if args.screenshot:
        _screenshot_when_ready(window, args.screenshot)
    return app.exec()


def _screenshot_when_ready(window, path: str) -> None:
    """--screenshot: once a face and its 3D view are on screen (or an error shows), save and quit."""
    from PySide6.QtCore import QTimer

    def save() -> None:
        window.grab_window().save(path)
        print(f"screenshot: {path}", flush=True)
        window.close()

    def check() -> None:
        ready = window.preview_settled() and window.tab.viewport.has_mesh
        if ready or window.message.kind == "error" and window.message.isVisible():
            timer.stop()
            QTimer.singleShot(500, save)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(200)


def _install_excepthook(window) -> None:
    """A bug in a slot becomes a message in the window (and a traceback in the log), not a crash."""
    log = logging.getLogger("cest_studio")
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        import traceback

        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        try:
            window.show_error(f"unexpected error ({kind.__name__}): {value}")
        except Exception:  # noqa: BLE001 - the window may be gone
            pass

    sys.excepthook = hook


if __name__ == "__main__":
    sys.exit(main())


def _set_window_icon(app) -> None:
    from PySide6.QtGui import QIcon

    from engine.resources import resources_root

    icon = resources_root() / "icons" / "cest-studio.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
