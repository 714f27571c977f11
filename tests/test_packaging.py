"""Packaging: the desktop entry, its per-user install and uninstall, the icon, the PyInstaller spec,
the bundle's entry script, and ``cest-studio --selftest``.

The slow test builds the bundle and runs it under Xvfb; it runs only with CEST_BUILD_BUNDLE=1:

    CEST_BUILD_BUNDLE=1 .venv/bin/python -m pytest tests/test_packaging.py -m slow -s

(CEST_BUNDLE_DIR=DIST/cest-studio tests an already built bundle instead of building one.)
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
DESKTOP = PACKAGING / "cest-studio.desktop"
INSTALL = PACKAGING / "install-desktop.sh"
SPEC = PACKAGING / "cest_studio.spec"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

# Every suffix the engine opens, and the MIME type(s) a desktop gives such a file.
SUFFIX_MIME = {
    ".png": {"image/png"},
    ".jpg": {"image/jpeg"},
    ".jpeg": {"image/jpeg"},
    ".bmp": {"image/bmp"},
    ".tif": {"image/tiff"},
    ".tiff": {"image/tiff"},
    ".webp": {"image/webp"},
    ".gif": {"image/gif"},
    ".mp4": {"video/mp4"},
    ".mov": {"video/quicktime"},
    ".avi": {"video/x-msvideo"},
    ".mkv": {"video/x-matroska"},
    ".webm": {"video/webm"},
    ".m4v": {"video/mp4", "video/x-m4v"},
    ".mpg": {"video/mpeg"},
    ".mpeg": {"video/mpeg"},
    ".ppm": {"image/x-portable-pixmap"},
    ".pgm": {"image/x-portable-graymap"},
    ".pbm": {"image/x-portable-bitmap"},
    ".pnm": {"image/x-portable-anymap"},
}


def read_desktop(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    assert parser.sections()[0] == "Desktop Entry"
    return dict(parser["Desktop Entry"])


def exec_argv(value: str) -> list[str]:
    """A .desktop Exec value split as the spec says (quoted arguments, \\-escapes inside quotes)."""
    return shlex.split(value.replace("%%", "%"))


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    return env


def run_install(home: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(INSTALL), *args],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def program(tmp_path) -> Path:
    """A stand-in for the bundle's executable, in a folder with a space in its name."""
    folder = tmp_path / "my apps" / "cest-studio"
    folder.mkdir(parents=True)
    exe = folder / "cest-studio"
    exe.write_text('#!/bin/sh\necho cest-studio "$@"\n')
    exe.chmod(0o755)
    return exe


# ------------------------------------------------------------------------------- desktop entry


def test_desktop_entry_has_the_required_keys():
    entry = read_desktop(DESKTOP)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "CEST Studio"
    assert entry["Icon"] == "cest-studio"  # a theme name: install-desktop.sh installs the icon under it
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Graphics" in entry["Categories"].split(";")
    argv = exec_argv(entry["Exec"])
    assert Path(argv[0]).name == "cest-studio"
    assert argv[1:] == ["%f"]  # the app opens one photo or video
    assert entry["TryExec"] == "cest-studio"


def test_desktop_entry_mime_types_cover_what_the_engine_opens():
    from engine.io.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    value = read_desktop(DESKTOP)["MimeType"]
    assert value.endswith(";")
    types_ = value.rstrip(";").split(";")
    assert len(types_) == len(set(types_))
    assert all(re.fullmatch(r"(image|video)/[a-z0-9.+-]+", t) for t in types_), types_
    for suffix in sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES):
        assert suffix in SUFFIX_MIME, f"add {suffix}'s MIME type to cest-studio.desktop and SUFFIX_MIME"
        assert SUFFIX_MIME[suffix] & set(types_), f"{suffix}: none of {SUFFIX_MIME[suffix]} in MimeType="


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="needs desktop-file-utils")
def test_desktop_entry_validates():
    result = subprocess.run(
        ["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# --------------------------------------------------------------------------- install / uninstall


def test_install_then_uninstall_leaves_nothing_behind(tmp_path, program):
    home = tmp_path / "home"
    home.mkdir()
    run_install(home, str(program.parent))  # the bundle folder is enough
    data = home / ".local" / "share"
    desktop = data / "applications" / "cest-studio.desktop"
    entry = read_desktop(desktop)
    assert exec_argv(entry["Exec"]) == [str(program), "%f"]  # quoted: the path has a space
    assert entry["TryExec"] == str(program)
    assert entry["MimeType"] == read_desktop(DESKTOP)["MimeType"]
    for size in ICON_SIZES:
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "cest-studio.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "cest-studio.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(
            ["desktop-file-validate", str(desktop)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout
    if shutil.which("update-desktop-database"):
        cache = (data / "applications" / "mimeinfo.cache").read_text()
        assert "image/png=cest-studio.desktop;" in cache

    run_install(home, str(program))  # installing again updates in place
    run_install(home, "--uninstall")
    assert tree(home) == []
    assert "not installed" in run_install(home, "--uninstall").stdout


def test_uninstall_keeps_what_was_there_before(tmp_path, program):
    home = tmp_path / "home"
    apps = home / ".local" / "share" / "applications"
    apps.mkdir(parents=True)
    other = apps / "other.desktop"
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    before = tree(home)
    run_install(home, str(program))
    run_install(home, "--uninstall")
    after = [p for p in tree(home) if not p.endswith("mimeinfo.cache")]  # the database lists other.desktop
    assert after == before
    assert other.read_text().startswith("[Desktop Entry]")


@pytest.mark.skipif(shutil.which("xdg-mime") is None, reason="needs xdg-utils")
def test_default_association_is_given_back_on_uninstall(tmp_path, program):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    mimeapps = home / ".config" / "mimeapps.list"
    original = (
        "[Default Applications]\nimage/png=eog.desktop;\n\n"
        "[Added Associations]\nimage/png=eog.desktop;gimp.desktop;\n"
    )
    mimeapps.write_text(original)
    run_install(home, "--default", str(program))
    query = subprocess.run(
        ["xdg-mime", "query", "default", "video/mp4"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert query.stdout.strip() == "cest-studio.desktop"
    assert "image/png=cest-studio.desktop" in mimeapps.read_text()
    run_install(home, "--uninstall")
    assert mimeapps.read_text() == original
    assert tree(home) == [".config", ".config/mimeapps.list"]


@pytest.mark.skipif(shutil.which("xdg-mime") is None, reason="needs xdg-utils")
def test_default_association_in_an_empty_home_is_removed_entirely(tmp_path, program):
    home = tmp_path / "home"
    home.mkdir()
    run_install(home, "--default", str(program))
    assert (home / ".config" / "mimeapps.list").is_file()
    run_install(home, "--uninstall")
    assert tree(home) == []


def test_install_refuses_a_missing_program(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        ["bash", str(INSTALL), str(tmp_path / "nope")],
        env=clean_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "not an executable" in result.stderr
    assert tree(home) == []


# ------------------------------------------------------------------------------------- icons


def test_icon_svg_and_png_sizes():
    from PIL import Image

    for name in ("cest-studio.svg", "cest-studio-small.svg"):
        svg = ET.parse(PACKAGING / "icons" / name).getroot()
        assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 256 256"
    for size in ICON_SIZES:
        with Image.open(PACKAGING / "icons" / f"cest-studio-{size}.png") as image:
            assert image.size == (size, size) and image.mode == "RGBA"
            assert image.getextrema()[3][1] == 255  # not blank
    with Image.open(PACKAGING / "icons" / "cest-studio.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    assert (PACKAGING / "icons" / "cest-studio.icns").read_bytes()[:4] == b"icns"
    window_icon = ROOT / "resources" / "icons" / "cest-studio.png"
    assert window_icon.read_bytes() == (PACKAGING / "icons" / "cest-studio-256.png").read_bytes()


# -------------------------------------------------------------------------------------- spec


class _Recorder:
    """Stands in for PyInstaller's Analysis/PYZ/EXE/COLLECT/BUNDLE while the spec is executed."""

    calls: ClassVar[dict] = {}

    def __init__(self, kind):
        self.kind = kind

    def __call__(self, *args, **kwargs):
        obj = types.SimpleNamespace(
            args=args, kwargs=kwargs, binaries=[], datas=list(kwargs.get("datas", []))
        )
        if self.kind == "Analysis":
            obj.binaries = [(dest, "/src/" + dest, "BINARY") for dest in _SAMPLE_BINARIES]
            obj.datas = [(dest, src, "DATA") for src, dest in obj.datas]
            obj.scripts, obj.pure = [], []
        _Recorder.calls[self.kind] = obj
        return obj


_SAMPLE_BINARIES = [
    "torch/lib/libtorch_cpu.so",
    "torch/lib/libtorchbind_test.so",
    "torch/bin/torch_shm_manager",
    "torch/bin/protoc",
    "nvidia/cublas/lib/libcublas.so.12",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland-egl.so",
    "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
    "PySide6/Qt/plugins/imageformats/libqjpeg.so",
    "PySide6/Qt/plugins/imageformats/libqpdf.so",
    "vtkmodules/libvtkRenderingOpenGL2-9.7.so",
]


def test_spec_parses_and_selects_the_right_files(monkeypatch):
    source = SPEC.read_text()
    ast.parse(source)  # valid Python
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = lambda name: [name]
    for name in ("PyInstaller", "PyInstaller.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    monkeypatch.setattr(sys, "path", list(sys.path))
    _Recorder.calls = {}
    namespace = {"SPECPATH": str(PACKAGING), "__file__": str(SPEC), "__name__": "__main__"}
    for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[kind] = _Recorder(kind)
    exec(compile(source, str(SPEC), "exec"), namespace)

    analysis = _Recorder.calls["Analysis"]
    assert analysis.args[0] == [str(PACKAGING / "entry.py")] and (PACKAGING / "entry.py").is_file()
    excludes = set(analysis.kwargs["excludes"])
    assert {
        "PySide6.QtWebEngineCore",
        "PySide6.Qt3DCore",
        "PySide6.QtQuick",
        "PySide6.QtMultimedia",
        "tkinter",
        "pytest",
    } <= excludes
    hidden = set(analysis.kwargs["hiddenimports"])
    assert {
        "vtkmodules.vtkRenderingOpenGL2",
        "vtkmodules.vtkInteractionStyle",
        "torch.utils.tensorboard",
    } <= hidden
    shipped = {dest for dest, *_ in analysis.datas}
    for resource in ("resources/facemodel", "resources/detect", "resources/samples", "resources/icons"):
        assert resource in shipped, resource
    assert "configs" in shipped
    if (ROOT / "resources" / "weights" / "cest_default.safetensors").exists():
        assert "resources/weights" in shipped
    binaries = {dest for dest, *_ in analysis.binaries}
    assert binaries == {
        "torch/lib/libtorch_cpu.so",
        "torch/bin/torch_shm_manager",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/imageformats/libqjpeg.so",
        "vtkmodules/libvtkRenderingOpenGL2-9.7.so",
    }
    assert _Recorder.calls["EXE"].kwargs["name"] == "cest-studio"
    assert _Recorder.calls["COLLECT"].kwargs["name"] == "cest-studio"


# ------------------------------------------------------------------------------- entry script


def _load_entry():
    spec = importlib.util.spec_from_file_location("cest_bundle_entry", PACKAGING / "entry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_dispatches_selftest_training_and_the_app(monkeypatch):
    monkeypatch.setenv("QT_API", "pyside6")
    monkeypatch.setattr(sys, "argv", ["cest-studio"])
    entry = _load_entry()
    seen = {}
    import cest_studio.app
    import cest_studio.selftest
    import engine.train

    monkeypatch.setattr(cest_studio.selftest, "main", lambda argv: seen.setdefault("selftest", argv) and 0)
    monkeypatch.setattr(engine.train, "main", lambda argv: seen.setdefault("train", argv) and 0)
    monkeypatch.setattr(cest_studio.app, "main", lambda argv=None: seen.setdefault("app", argv) and 0)
    assert entry.main(["--selftest", "--no-qt", "-v"]) == 0
    assert seen["selftest"] == ["--no-qt", "-v"]
    # what the Train tab starts: QProcess(sys.executable, ["-m", "engine.train", CONFIG, "--out", DIR])
    assert entry.main(["-m", "engine.train", "cfg.yaml", "--out", "run"]) == 0
    assert seen["train"] == ["cfg.yaml", "--out", "run"]
    assert entry.main(["photo.jpg", "--model", "fit"]) == 0
    assert seen["app"] == ["photo.jpg", "--model", "fit"]
    import cest_studio.video_job

    monkeypatch.setattr(cest_studio.video_job, "main", lambda argv: seen.setdefault("video", argv) and 0)
    assert entry.main(["-m", "cest_studio.video_job", "clip.mp4", "out"]) == 0
    assert seen["video"] == ["clip.mp4", "out"]
    assert entry.main(["-m", "os"]) == 2  # only the app's own entry points


def test_every_child_process_the_app_starts_is_accepted_by_the_bundle():
    """In the bundle the app's child processes (training, video jobs) run as ``cest-studio -m MODULE``:
    packaging/entry.py must list every module the app starts."""
    entry = _load_entry()
    source = "\n".join(p.read_text() for p in sorted((ROOT / "cest_studio").glob("*.py")))
    modules = set(re.findall(r'"module":\s*"([\w.]+)"', source))  # plans: {"module": "engine.train", ...}
    modules |= set(re.findall(r'\.start\(\s*"([a-z_]+\.[\w.]+)"', source))  # process.start("pkg.mod", args)
    modules |= set(re.findall(r'"-m",\s*"([\w.]+)"', source))
    assert "engine.train" in modules, "the app no longer starts training as -m engine.train: update entry.py"
    assert modules <= set(entry.MODULES), f"add {sorted(modules - set(entry.MODULES))} to packaging/entry.py"


# -------------------------------------------------------------------------------------- selftest


def test_selftest_reports_a_failure_on_one_line(capsys, tmp_path):
    from cest_studio.selftest import main

    assert main(["--image", str(tmp_path / "missing.png"), "--no-qt"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("selftest FAILED at resources:")


def test_selftest_checks_catch_broken_files(tmp_path):
    from cest_studio.selftest import SelftestError, verify_glb, verify_obj, verify_ply

    (tmp_path / "a.glb").write_bytes(b"glTF" + b"\x02\x00\x00\x00" + b"\xff\x00\x00\x00" + b"\x00" * 12)
    with pytest.raises(SelftestError, match="length"):
        verify_glb(tmp_path / "a.glb", 10)
    (tmp_path / "a.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nelement face 1\nend_header\n"
    )
    with pytest.raises(SelftestError, match="expected 10"):
        verify_ply(tmp_path / "a.ply", 10, 1)
    (tmp_path / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(SelftestError, match="expected 4 / 1"):
        verify_obj(tmp_path / "a.obj", 4, 1)
    (tmp_path / "b.obj").write_text("")
    with pytest.raises(SelftestError, match="empty"):
        verify_obj(tmp_path / "b.obj", 3, 1)


def test_selftest_reconstructs_and_exports_the_sample(capsys, tmp_path):
    from cest_studio.selftest import main

    assert main(["--out", str(tmp_path / "out"), "--threads", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("selftest ok:") and "\n" not in line, line
    params = json.loads((tmp_path / "out" / "params.json").read_text())
    from engine.reconstruct.reconstructor import default_weights

    assert params["method"] == ("cest" if default_weights() else "fit")
    for name in ("face.obj", "face.mtl", "face_albedo.png", "face.ply", "face.glb", "preview.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name


# ----------------------------------------------------------------------------- the bundle (slow)


def _bundle_env(tmp_path: Path) -> dict[str, str]:
    """What a desktop session gives a program: no Python, no venv, no PYTHONPATH."""
    home = tmp_path / "bundle-home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "LANG": "C.UTF-8"}


def _xvfb(cmd: list[str]) -> list[str]:
    return ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *cmd]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CEST_BUILD_BUNDLE") != "1",
    reason="builds the PyInstaller bundle (10-30 min): set CEST_BUILD_BUNDLE=1",
)
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (apt-get install xvfb xauth)")
def test_bundle_builds_and_passes_its_selftest_under_xvfb(tmp_path):
    if os.environ.get("CEST_BUNDLE_DIR"):
        bundle = Path(os.environ["CEST_BUNDLE_DIR"]).resolve()
    else:
        dist = tmp_path / "dist"
        start = time.perf_counter()
        build = subprocess.run(
            ["bash", str(PACKAGING / "build.sh"), str(dist)],
            capture_output=True,
            text=True,
            env={**os.environ, "CEST_SKIP_SELFTEST": "1"},
            timeout=5400,
            check=False,
        )
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        print(f"\nbuilt in {time.perf_counter() - start:.0f} s")
        bundle = dist / "cest-studio"
    exe = bundle / "cest-studio"
    assert exe.is_file() and os.access(exe, os.X_OK)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"bundle: {size / 2**20:.0f} MiB")
    names = [p.name for p in bundle.rglob("*")]
    assert not [n for n in names if re.match(r"lib(cuda|cudnn|cublas|nccl|nvrtc|cufft|cusparse)", n)]
    assert not [n for n in names if "WebEngine" in n or n.startswith(("libQt6Quick", "libQt63D"))]
    assert not (ROOT / "build").exists() or not list((ROOT / "build").glob("cest_studio*"))

    env = _bundle_env(tmp_path)
    start = time.perf_counter()
    run = subprocess.run(
        _xvfb([str(exe), "--selftest", "--gui"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.perf_counter() - start
    lines = [line for line in run.stdout.splitlines() if line.startswith("selftest")]
    print(f"selftest --gui: {elapsed:.1f} s: {lines}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("selftest ok:"), run.stdout
    assert "detector mediapipe-tflite" in lines[0]  # the bundled LiteRT runtime works, no Haar fallback

    show = subprocess.run(
        _xvfb([str(exe), "--exit-after-show"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert show.returncode == 0 and "window shown in" in show.stdout, show.stdout + show.stderr
    print(show.stdout.strip())

    # the app's video job (a child process): a short clip panning over the sample face
    import numpy as np

    from engine.io.image import load_image
    from engine.io.video import VideoWriter

    clip, image = tmp_path / "clip.mp4", load_image(ROOT / "resources" / "samples" / "astronaut.png")
    with VideoWriter(clip, 10) as writer:
        for i in range(4):
            writer.write(np.ascontiguousarray(image[10 + 3 * i : 298 + 3 * i, 60 + 6 * i : 348 + 6 * i]))
    video = subprocess.run(
        [str(exe), "-m", "cest_studio.video_job", str(clip), str(tmp_path / "video")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert video.returncode == 0, video.stdout[-3000:] + video.stderr[-3000:]
    assert '@cest {"done"' in video.stdout and (tmp_path / "video" / "frames.jsonl").is_file()

    # the Train tab's child process: the bundle's own executable with -m engine.train
    out = tmp_path / "run"
    train = subprocess.run(
        [
            str(exe),
            "-m",
            "engine.train",
            str(ROOT / "configs" / "smoke.yaml"),
            "--out",
            str(out),
            "--steps",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert (out / "weights.safetensors").is_file() and list((out / "tb").iterdir())
