"""Faces labelled by a teacher: Face Mesh + dlib's 68 points on photos and video frames, for the refiner.

    python scripts/pseudo_label_faces.py --out runs/pseudo/faces.npz \
        --images '../shared/data/lfw_people/[A-R]*/*.jpg' --videos '../shared/data/faces/clips/*.mp4'

For every photo and every `--every`-th frame of a video (at most `--frames` per video), as is and
mirrored: the shipped Face Mesh (without the refiner) and dlib's 68-point predictor on its own HOG
box (drawn green marks painted out of photos first, as training does). Faces where the two disagree by more than `--agree` eye distances (mean point distance to the
index-table points) are dropped. Each kept face is cut out around its points and resized to `--side`
pixels, so the file holds many faces in little memory. dlib's model was trained on 300-W (research use):
what is fitted on these labels carries those terms. Needs dlib-bin and face-recognition-models.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import cv2
import numpy as np

from engine.detect import MediaPipeDetector, mesh_to_ibug68
from engine.detect.base import as_rgb
from engine.detect.dlib import DlibDetector
from engine.evaluation.landmarks300w import match_face
from engine.io.image import load_image
from engine.io.video import iter_frames
from engine.training.data.images import erase_drawn_marks


def sources(images: list[str], videos: list[str], every: int, frames: int):
    """(id, RGB image) for each photo and the chosen video frames."""
    for pattern in images:
        for path in sorted(glob.glob(pattern)):
            yield path, erase_drawn_marks(as_rgb(load_image(path)))  # LFW's green boxes and crosses
    for pattern in videos:
        for path in sorted(glob.glob(pattern)):
            for index, _, image in iter_frames(path):
                if index % every == 0 and index // every < frames:
                    yield f"{path}#{index}", image
                elif index // every >= frames:
                    break


def label(image: np.ndarray, mesh_detector, teacher, agree: float):
    """(mesh (468, 3), teacher points (68, 2)) of the largest face both find, or None."""
    meshes = [f for f in mesh_detector.detect(image) if f.mesh is not None]
    if not meshes:
        return None
    taught = teacher.detect(image)
    mesh = meshes[0].mesh.astype(np.float64)
    table = mesh_to_ibug68(mesh)
    if (nearest := match_face(taught, table)) is None:
        return None
    points = np.asarray(nearest.landmarks, np.float64)
    iod = np.linalg.norm(points[36] - points[45])
    if np.linalg.norm(points - table, axis=1).mean() > agree * iod:
        return None
    return mesh, points


def cut_out(image: np.ndarray, mesh: np.ndarray, points: np.ndarray, side: int, margin: float = 1.1):
    """The face resized into a side x side square around its points, and the mesh and points moved with it."""
    centre = (points.min(0) + points.max(0)) / 2
    half = (points.max(0) - points.min(0)).max() * margin
    scale = side / (2 * half)
    warp = np.array([[scale, 0, side / 2 - scale * centre[0]], [0, scale, side / 2 - scale * centre[1]]])
    crop = cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    moved = mesh.copy()
    moved[:, :2] = mesh[:, :2] * scale + warp[:, 2]
    moved[:, 2] *= scale
    return crop, moved, points * scale + warp[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", default=[], help="glob(s) of photos")
    parser.add_argument("--videos", nargs="*", default=[], help="glob(s) of videos")
    parser.add_argument("--every", type=int, default=15, help="keep every n-th video frame")
    parser.add_argument("--frames", type=int, default=24, help="at most this many frames per video")
    parser.add_argument(
        "--agree", type=float, default=0.25, help="largest mean teacher/table gap (x eye distance)"
    )
    parser.add_argument("--side", type=int, default=256, help="side of each stored face (px)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    mesh_detector, teacher = MediaPipeDetector(refiner=False, threads=1), DlibDetector()
    kept: dict[str, list] = {"image": [], "mesh": [], "truth": [], "id": []}
    seen, start = 0, time.perf_counter()
    for name, rgb in sources(args.images, args.videos, args.every, args.frames):
        for mirrored in (False, True):
            image = np.ascontiguousarray(rgb[:, ::-1]) if mirrored else rgb
            seen += 1
            if (labelled := label(image, mesh_detector, teacher, args.agree)) is None:
                continue
            crop, mesh, points = cut_out(image, *labelled, args.side)
            for key, value in zip(kept, (crop, mesh, points, name)):
                kept[key].append(value)
        if seen % 200 < 2:
            print(
                f"{seen} images, {len(kept['id'])} faces kept, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **{k: np.array(v) for k, v in kept.items()})
    print(f"{len(kept['id'])} faces of {seen} images -> {args.out}")


if __name__ == "__main__":
    main()
