"""The bundle's one executable (``cest-studio``): the desktop app, its self-test, and the training
child process the app's Train tab starts.

    cest-studio [PHOTO_OR_VIDEO] [app options]   the desktop app (cest_studio.app.main)
    cest-studio --selftest [selftest options]    reconstruct the bundled sample, export, check; exit 0/1
    cest-studio -m engine.train CONFIG --out DIR the training run (what the Train tab starts: in a bundle
                                                 sys.executable is this program, not a Python)
    cest-studio -m cest_studio.video_job ...     a video reconstruction (what the app starts for a video)
    cest-studio -m engine ARGS / --cli ARGS      the ``cest`` command line (reconstruct, train, eval, bench)

PyInstaller runs this file as ``__main__``; from a checkout it also runs as
``python packaging/entry.py ...``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

# ``-m MODULE`` targets a bundle accepts: the modules the app starts as child processes or a user may
# run from a terminal. Each has ``main(argv) -> int``.
MODULES = {
    "engine": "engine.cli",
    "engine.cli": "engine.cli",
    "engine.train": "engine.train",
    "engine.finetune": "engine.finetune",
    "engine.evaluate": "engine.evaluate",
    "engine.bench": "engine.bench",
    "cest_studio": "cest_studio.app",
    "cest_studio.app": "cest_studio.app",
    "cest_studio.selftest": "cest_studio.selftest",
    "cest_studio.video_job": "cest_studio.video_job",  # the app reconstructs videos in a child process
}


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def _prepare_environment() -> None:
    if _frozen():
        # No user site-packages, no stray PYTHONPATH modules, no network for anything that would try.
        os.environ.pop("PYTHONPATH", None)
        os.environ.setdefault("PYVISTA_OFF_SCREEN", "false")
        os.environ.setdefault("MPLBACKEND", "Agg")  # pyvista imports matplotlib for colour maps only
    os.environ.setdefault("QT_API", "pyside6")  # qtpy (under pyvistaqt) must pick the bundled PySide6
    if (
        _frozen()
        and sys.platform.startswith("linux")
        and os.environ.get("DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        # VTK's render window needs an X11 window: under Wayland, go through XWayland. The bundle
        # ships no Wayland plug-in (a checkout leaves the choice to Qt).
        os.environ["QT_QPA_PLATFORM"] = "xcb"


def _run_module(name: str, argv: list[str]) -> int:
    import importlib

    target = MODULES.get(name)
    if target is None:
        print(
            f"cest-studio: -m {name}: not available in this bundle "
            f"(choose one of {', '.join(sorted(MODULES))})",
            file=sys.stderr,
        )
        return 2
    sys.argv = [name, *argv]
    # The app reads a child's output as it comes (progress, @cest messages): flush each line.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    module = importlib.import_module(target)
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _prepare_environment()
    if len(argv) >= 2 and argv[0] == "-m":
        return _run_module(argv[1], argv[2:])
    if argv[:1] == ["--cli"]:
        return _run_module("engine.cli", argv[1:])
    if "--selftest" in argv:
        from cest_studio.selftest import main as selftest_main

        return selftest_main([a for a in argv if a != "--selftest"])
    from cest_studio.app import main as app_main

    sys.argv = [sys.argv[0], *argv]
    return int(app_main(argv) or 0)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child started by multiprocessing runs its task, not the app
    sys.exit(main())
