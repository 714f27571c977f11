"""Render the application icon: cest-studio.svg (48 px and up) and cest-studio-small.svg (16-32 px)
into PNGs with Qt's own SVG renderer (QtSvg ships in PySide6-Essentials), then the Windows .ico and
the macOS .icns from those PNGs with Pillow.

    .venv/bin/python packaging/icons/render_icons.py [--window-icon resources/icons/cest-studio.png]

Writes, next to this file: cest-studio-{16,24,32,48,64,128,256,512}.png, cest-studio.ico (16-256)
and cest-studio.icns (16-512). The files are committed; rerun after editing an SVG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
SMALL = 32  # sizes up to this one use the simplified drawing
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
WINDOW_ICON_SIZE = 256


def png_path(size: int) -> Path:
    return HERE / f"cest-studio-{size}.png"


def render(svg: Path, size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"cannot parse {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"cannot write {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--window-icon",
        type=Path,
        default=None,
        help=f"also copy the {WINDOW_ICON_SIZE} px PNG here (the app's window icon)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - QPainter needs one
    for size in SIZES:
        svg = HERE / ("cest-studio-small.svg" if size <= SMALL else "cest-studio.svg")
        render(svg, size, png_path(size))

    from PIL import Image

    images = {size: Image.open(png_path(size)).convert("RGBA") for size in SIZES}
    largest = images[max(ICO_SIZES)]
    # Pillow's ICO writer takes the largest image and the sizes; give it each size's own drawing.
    largest.save(
        HERE / "cest-studio.ico",
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)],
    )
    images[512].save(
        HERE / "cest-studio.icns", format="ICNS", append_images=[images[s] for s in (16, 32, 64, 128, 256)]
    )
    if args.window_icon:
        args.window_icon.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png_path(WINDOW_ICON_SIZE), args.window_icon)
    print(f"wrote {len(SIZES)} PNGs, cest-studio.ico and cest-studio.icns in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
