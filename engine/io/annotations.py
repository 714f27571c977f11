"""68-point face annotations on disk: iBUG ``.pts`` files and dlib (imglab) XML datasets.

Everything returned is in this project's convention (docs/conventions.md): (68, 2) float arrays,
pixel coordinates (x, y) of the image whose integer values are pixel centres, 0-based.

- ``.pts`` (300-W, iBUG, menpo): ``version: 1`` / ``n_points: 68`` / ``{`` x y lines ``}``. The files
  were written by Matlab tools and are 1-based, so by default 1 is subtracted on reading and added
  on writing (menpo does the same); pass ``one_based=False`` for files known to be 0-based.
- dlib XML (``imglab``, ``labels_ibug_300W*.xml``): ``<image file=...><box ...><part name='00' x= y=/>``,
  0-based pixels (dlib's convention). Part names are the point indices; images may hold several
  boxes (faces), each with its parts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.io.formats import IMAGE_SUFFIXES  # every suffix the image reader takes


class AnnotationError(ValueError):
    """An annotation file that cannot be read as 68 (or n) 2D points."""


# ------------------------------------------------------------------------------------------ .pts


def read_pts(path: str | Path, one_based: bool = True) -> np.ndarray:
    """An iBUG ``.pts`` file -> (n, 2) float32 0-based pixel coordinates."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    declared = None
    if m := re.search(r"n_points\s*:\s*(\d+)", text):
        declared = int(m.group(1))
    if "{" in text:
        start = text.index("{") + 1
        end = text.index("}", start) if "}" in text[start:] else len(text)
        body = text[start:end]
    else:  # bare "x y" lines
        body = "\n".join(line for line in text.splitlines() if ":" not in line)
    rows = [line.split() for line in body.splitlines() if line.strip()]
    try:
        points = np.array([[float(r[0]), float(r[1])] for r in rows], np.float32).reshape(-1, 2)
    except (ValueError, IndexError) as err:
        raise AnnotationError(f"{path}: not a .pts file ({err})") from err
    if declared is not None and declared != len(points):
        raise AnnotationError(f"{path}: declares {declared} points but holds {len(points)}")
    if len(points) == 0:
        raise AnnotationError(f"{path}: no points")
    return points - 1 if one_based else points


def write_pts(path: str | Path, points: np.ndarray, one_based: bool = True) -> None:
    """Write (n, 2) 0-based pixel coordinates as an iBUG ``.pts`` file."""
    points = np.asarray(points, np.float64).reshape(-1, 2) + (1 if one_based else 0)
    lines = ["version: 1", f"n_points:  {len(points)}", "{"]
    lines += [f"{x:.6f} {y:.6f}" for x, y in points]
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------- dlib XML


@dataclass
class AnnotatedFace:
    """One annotated face of one image: its box (x0, y0, x1, y1, or None) and points (n, 2)."""

    image: Path
    points: np.ndarray
    box: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def read_dlib_xml(path: str | Path, n_points: int = 68) -> list[AnnotatedFace]:
    """A dlib/imglab XML dataset -> faces with all ``n_points`` parts (others are skipped).

    Image paths are resolved against the XML file's folder.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise AnnotationError(f"{path}: not an XML file ({err})") from err
    faces = []
    for image in root.iter("image"):
        file = image.get("file")
        if not file:
            continue
        for box in image.iter("box"):
            parts = {}
            for part in box.iter("part"):
                try:
                    parts[int(part.get("name"))] = (float(part.get("x")), float(part.get("y")))
                except (TypeError, ValueError):
                    continue
            if n_points and len(parts) < n_points:
                continue
            start = 0 if 0 in parts else 1  # a few files number parts from 1
            try:
                points = np.array([parts[start + i] for i in range(n_points or len(parts))], np.float32)
            except KeyError:
                continue
            top, left, width, height = (float(box.get(k, "nan")) for k in ("top", "left", "width", "height"))
            rect = np.array([left, top, left + width, top + height], np.float32)
            faces.append(
                AnnotatedFace(
                    path.parent / file,
                    points,
                    None if np.isnan(rect).any() else rect,
                    {"ignore": box.get("ignore") == "1"},
                )
            )
    return faces


def write_dlib_xml(path: str | Path, faces: list[AnnotatedFace]) -> None:
    """Write faces as an imglab XML dataset (image paths relative to the XML file when possible)."""
    path = Path(path)
    root = ET.Element("dataset")
    ET.SubElement(root, "name").text = "CEST Studio landmarks"
    images = ET.SubElement(root, "images")
    by_image: dict[Path, list[AnnotatedFace]] = {}
    for face in faces:
        by_image.setdefault(Path(face.image), []).append(face)
    for image_path, group in by_image.items():
        try:
            rel = image_path.resolve().relative_to(path.parent.resolve())
        except ValueError:
            rel = image_path
        node = ET.SubElement(images, "image", file=str(rel))
        for face in group:
            pts = np.asarray(face.points, np.float64)
            x0, y0, x1, y1 = face.box if face.box is not None else (*pts.min(0), *pts.max(0))
            box = ET.SubElement(
                node,
                "box",
                top=str(int(round(y0))),
                left=str(int(round(x0))),
                width=str(int(round(x1 - x0))),
                height=str(int(round(y1 - y0))),
            )
            for i, (x, y) in enumerate(pts):
                ET.SubElement(box, "part", name=f"{i:02d}", x=f"{x:g}", y=f"{y:g}")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------------------- folder scan


def find_annotated_images(folder: str | Path, one_based: bool = True) -> list[AnnotatedFace]:
    """Every image of a folder (recursively) with a ``.pts`` beside it, plus every XML dataset in it.

    A ``.pts`` file belongs to the image of the same stem (``face.png`` + ``face.pts``); 300-W's
    multi-face images use ``face_1.pts``, ``face_2.pts`` beside ``face.png``.
    """
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() == ".xml":
            return read_dlib_xml(folder)
        raise AnnotationError(f"{folder}: give a folder or a dlib XML file")
    faces: list[AnnotatedFace] = []
    images = {p.with_suffix(""): p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
    for pts in sorted(folder.rglob("*.pts")):
        stem = pts.with_suffix("")
        image = images.get(stem)
        if image is None and (m := re.fullmatch(r"(.*)_\d+", stem.name)):
            image = images.get(stem.with_name(m.group(1)))
        if image is not None:
            faces.append(AnnotatedFace(image, read_pts(pts, one_based), None, {"annotation": str(pts)}))
    for xml in sorted(folder.rglob("*.xml")):
        try:
            faces += read_dlib_xml(xml)
        except AnnotationError:
            continue
    return faces
