"""``cest-studio --selftest``: prove that an installation (a checkout, a wheel or a PyInstaller bundle)
works, with no display and no network, in one command that prints one line and exits 0 or 1.

Steps, each timed:
1. resources: the sample photo, the face model and the face detector models are where the engine
   looks for them ($CEST_RESOURCES, the bundle's resources/ or the repository's).
2. reconstruct: the sample face with the shipped CEST weights (the landmark fit when no weights ship,
   or whatever ``--method`` asks for).
3. export: the mesh as OBJ (+ MTL + albedo PNG), PLY and GLB, the maps and params.json, into a
   temporary folder (``--out`` keeps them).
4. verify: every file read back and checked (vertex and triangle counts against the face model,
   PNG sizes, the GLB header, finite coordinates, params.json's method).
5. qt: QtGui and QtWidgets load and decode the app's PNGs (the bundled Qt libraries and plug-ins).
6. vtk: pyvista/VTK read the exported PLY back (the bundled VTK modules the 3D viewport uses).
With ``--gui`` it then also opens the real main window (needs an X display, e.g. under xvfb-run),
opens the sample there, waits for its face and its 3D view, exports through the window, and checks
those files too.

Output: ``selftest ok: ...`` or ``selftest FAILED at STEP: ...`` on stdout; ``-v`` adds the
progress of each step on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from cest_studio.export_checks import (  # noqa: F401 - re-exported: the checks of step 4
    SelftestError,
    png_size,
    verify,
    verify_glb,
    verify_obj,
    verify_ply,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cest-studio --selftest",
        description="Reconstruct the bundled sample face, export it, check the files.",
    )
    parser.add_argument("--selftest", action="store_true", help=argparse.SUPPRESS)  # when argv is the app's
    parser.add_argument(
        "--method",
        choices=["auto", "cest", "fit"],
        default="auto",
        help="auto (default): the shipped CEST weights when they exist, else the fit",
    )
    parser.add_argument("--detector", default="auto", help="face detector backend (default: the best one)")
    parser.add_argument("--image", default=None, help="another photo instead of the bundled sample")
    parser.add_argument("--out", default=None, help="keep the exported files in this folder")
    parser.add_argument(
        "--gui",
        action="store_true",
        help="also open the main window, reconstruct and export through it (needs a display)",
    )
    parser.add_argument("--no-qt", action="store_true", help="skip the Qt and VTK checks (engine only)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the --gui steps may take")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress of each step on stderr")
    return parser


class _Steps:
    """Runs named steps, times them, and remembers which one failed."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.times: dict[str, float] = {}
        self.current = "start"

    def run(self, name: str, func, *args, **kwargs):
        self.current = name
        start = time.perf_counter()
        if self.verbose:
            print(f"[selftest] {name}…", file=sys.stderr, flush=True)
        value = func(*args, **kwargs)
        self.times[name] = time.perf_counter() - start
        if self.verbose:
            print(f"[selftest] {name}: {self.times[name]:.2f} s", file=sys.stderr, flush=True)
        return value


# ------------------------------------------------------------------------------------- steps


def check_resources(image: str | None) -> dict:
    from engine.resources import resources_root

    root = resources_root()
    if not root.is_dir():
        raise SelftestError(f"no resources folder at {root}")
    needed = [
        "facemodel/facemodel.npz",
        "detect/face_detection_short_range.tflite",
        "detect/face_landmark.tflite",
    ]
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise SelftestError(f"missing in {root}: {', '.join(missing)}")
    sample = Path(image) if image else root / "samples" / "astronaut.png"
    if not sample.is_file():
        raise SelftestError(f"no sample photo at {sample}")
    return {"root": root, "sample": sample}


def reconstruct(sample: Path, method: str, threads: int | None, detector: str = "auto"):
    import torch

    if threads:
        torch.set_num_threads(threads)
    from engine.reconstruct.reconstructor import Reconstructor

    reconstructor = Reconstructor(method=method, device="cpu", detector=detector)
    recon = reconstructor.reconstruct(sample)
    return reconstructor, recon


def export(reconstructor, recon, out: Path) -> list[Path]:
    from engine.reconstruct.views import write_reconstruction

    return write_reconstruction(reconstructor, recon, out, formats=("obj", "ply", "glb"))


def check_qt(sample: Path) -> str:
    """QtGui/QtWidgets import and decode PNGs (the sample, and the window icon when it ships)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QWidget  # noqa: F401 - the widgets library must load

    from engine.resources import resources_root

    images = [sample, *sorted((resources_root() / "icons").glob("*.png"))]
    for path in images:
        image = QImage(str(path))
        if image.isNull() or image.width() < 1:
            raise SelftestError(f"Qt could not read {path.name}")
    return pyside_version


def check_vtk(ply: Path, n_vertices: int) -> str:
    """The exported PLY read back through pyvista/VTK (the modules the 3D viewport needs)."""
    import pyvista
    import vtkmodules

    mesh = pyvista.read(str(ply))
    if mesh.n_points != n_vertices:
        raise SelftestError(f"VTK read {mesh.n_points} points from {ply.name}, expected {n_vertices}")
    return getattr(vtkmodules, "__version__", "?")


# ---------------------------------------------------------------------------------- GUI mode


def check_gui(sample: Path, out: Path, timeout: float, reconstructor_check) -> float:
    """Open the main window, open the sample in it, wait for the face and the 3D view, export through
    the window and verify those files. Returns the seconds the window took to show."""
    os.environ.setdefault("QT_API", "pyside6")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SelftestError("--gui needs a display (run it under xvfb-run)")
    from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from cest_studio.main_window import MainWindow

    settings = QSettings(str(out / "settings.ini"), QSettings.Format.IniFormat)
    start = time.perf_counter()
    window = MainWindow(settings=settings, threads=None)
    window.show()
    shown = time.perf_counter() - start
    state: dict = {}
    window.face_ready.connect(lambda face: state.setdefault("face", face))
    window.error_shown.connect(lambda message: state.setdefault("error", message))
    window.exported.connect(lambda files: state.setdefault("exported", files))

    def wait(condition, what: str) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():
            if "error" in state:
                raise SelftestError(f"the window showed an error while {what}: {state['error']}")
            if time.perf_counter() > deadline:
                raise SelftestError(f"timed out after {timeout:.0f} s {what}")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    try:
        window.open_path(str(sample), remember=False)
        wait(lambda: "face" in state, "reconstructing the sample in the window")
        viewport = window.tab.viewport
        wait(lambda: viewport.plotter is not None and viewport.has_mesh, "waiting for the 3D view")
        folder = out / "window_export"
        window.export_to(
            {
                "folder": str(folder),
                "name": "face",
                "obj": True,
                "ply": True,
                "glb": True,
                "maps": False,
                "screenshot": True,
                "bake_light": False,
                "sequence": False,
                "sequence_format": None,
            }
        )
        wait(lambda: "exported" in state, "exporting from the window")
        reconstructor_check(folder)
        shot = folder / "face_3d_view.png"
        if shot.exists():
            width, height = png_size(shot)
            if width < 16 or height < 16:
                raise SelftestError(f"the 3D view screenshot is only {width}x{height}")
    finally:
        window.close()
        QCoreApplication.processEvents()
    return shown


# -------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    import logging

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    steps = _Steps(args.verbose)
    start = time.perf_counter()
    keep = args.out is not None
    out = Path(args.out).expanduser() if keep else Path(tempfile.mkdtemp(prefix="cest-selftest-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
        found = steps.run("resources", check_resources, args.image)
        reconstructor, recon = steps.run(
            "reconstruct", reconstruct, found["sample"], args.method, args.threads, args.detector
        )
        steps.run("export", export, reconstructor, recon, out)
        counts = steps.run("verify", verify, out, reconstructor, recon)
        extra = ""
        if not args.no_qt:
            qt = steps.run("qt", check_qt, found["sample"])
            vtk = steps.run("vtk", check_vtk, out / "face.ply", counts["vertices"])
            extra = f", Qt {qt} and VTK {vtk} load"
        if args.gui:
            shown = steps.run(
                "gui",
                check_gui,
                found["sample"],
                out,
                args.timeout,
                lambda folder: verify(folder, reconstructor, recon, maps=False),
            )
            extra += f", the window showed in {shown:.1f} s and exported"
    except SelftestError as exc:
        print(f"selftest FAILED at {steps.current}: {exc}", flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - any failure is a result to report on one line
        if args.verbose:
            traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"selftest FAILED at {steps.current}: {type(exc).__name__}: {message}", flush=True)
        return 1
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    total = time.perf_counter() - start
    where = f" into {out}" if keep else ""
    detector = getattr(reconstructor.detector, "name", type(reconstructor.detector).__name__)
    print(
        f"selftest ok: {recon.method} reconstruction of {found['sample'].name} (detector {detector}; "
        f"{counts['vertices']} vertices, {counts['triangles']} triangles; "
        f"{steps.times['reconstruct']:.1f} s), obj/ply/glb + maps exported{where} and read back{extra}; "
        f"{total:.1f} s in all",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
