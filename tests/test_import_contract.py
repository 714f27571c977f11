"""Layering: the engine never imports Qt or the app (works without lint-imports); the app's window
module imports no engine maths, torch or VTK at start-up (the window opens first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("PySide6", "shiboken6", "cest_studio", "pyvistaqt", "qtpy")

IMPORT_ALL_ENGINE = r"""
import importlib, json, pkgutil, sys
import engine
imported, skipped = [], {}
for info in pkgutil.walk_packages(engine.__path__, "engine."):
    if info.name.endswith("__main__"):
        continue  # runs the CLI
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except ModuleNotFoundError as exc:  # an optional backend's package (pytorch3d) that is not installed
        if exc.name and exc.name.split(".")[0] != "engine":
            skipped[info.name] = exc.name
        else:
            raise
loaded = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"imported": imported, "skipped": skipped, "forbidden_loaded": loaded}))
""" % (FORBIDDEN,)

IMPORT_WINDOW = r"""
import json, sys
import cest_studio.main_window, cest_studio.app
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "vtk", "vtkmodules", "pyvista", "pyvistaqt",
                                                          "cv2", "trimesh", "av", "scipy"})
engine = sorted(m for m in sys.modules if m.startswith("engine.") and m != "engine.resources")
print(json.dumps({"heavy": heavy, "engine": engine}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_engine_modules_never_load_qt_or_the_app():
    result = _run(IMPORT_ALL_ENGINE)
    assert len(result["imported"]) >= 20, result
    assert (
        "engine.reconstruct.editing" in result["imported"]
        and "engine.reconstruct.reconstructor" in result["imported"]
    )
    assert result["forbidden_loaded"] == [], f"engine imports pulled in {result['forbidden_loaded']}"


def test_the_window_module_imports_no_heavy_engine_at_start():
    """What makes the window open within seconds: torch, VTK and the engine load on worker threads."""
    result = _run(IMPORT_WINDOW)
    assert result["heavy"] == [], f"importing the window loads {result['heavy']}"
    assert result["engine"] == [], f"importing the window loads {result['engine']}"


def test_import_linter_contracts_are_kept():
    """pyproject.toml's import-linter contracts: engine forbids Qt and the app, and keeps its layers."""
    pytest.importorskip("importlinter")
    code = "import sys; from importlinter.cli import lint_imports_command; sys.argv = ['lint-imports']; lint_imports_command()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "layers" in out.stdout
