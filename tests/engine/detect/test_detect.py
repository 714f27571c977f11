"""Face detection + 68 landmarks: the default backend on the sample photo, odd inputs, fallbacks."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from engine import detect
from engine.detect import (
    IBUG68_FLIP,
    Face,
    NoFaceError,
    available_backends,
    backend_status,
    create_detector,
    detect_largest,
    flip_landmarks,
    shrink,
)

EYE_R, EYE_L = slice(36, 42), slice(42, 48)  # the subject's right eye is on the image's left


@pytest.fixture(scope="module")
def detector():
    return create_detector()


@pytest.fixture(scope="module")
def face(detector, sample_image) -> Face:
    faces = detector.detect(sample_image)
    assert len(faces) == 1
    return faces[0]


def _iod(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[EYE_R].mean(0) - landmarks[EYE_L].mean(0)))


def test_default_backend_is_mediapipe(detector):
    assert detector.name == "mediapipe-tflite"
    assert available_backends()[0] == "mediapipe-tflite"


def test_sample_face_has_plausible_landmarks(face):
    lm = face.landmarks
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    assert face.box.shape == (4,) and 0.5 < face.score <= 1
    x0, y0, x1, y1 = face.box
    assert (
        (lm[:, 0] >= x0).all()
        and (lm[:, 0] <= x1).all()
        and (lm[:, 1] >= y0).all()
        and (lm[:, 1] <= y1).all()
    )
    y = lambda idx: lm[idx, 1].mean()  # noqa: E731
    assert (
        y(slice(17, 27)) < y(slice(36, 48)) < y(30) < y(slice(48, 68)) < y(8)
    )  # brows, eyes, nose, mouth, chin
    assert lm[EYE_R, 0].max() < lm[EYE_L, 0].min()
    assert lm[0, 0] < lm[30, 0] < lm[16, 0] and lm[48, 0] < lm[54, 0]
    assert 35 < _iod(lm) < 55  # her eye centres are ~43 px apart


def test_sample_landmarks_match_the_checked_positions(face):
    """Positions checked by eye on a drawing of the landmarks: eye centres, nose tip, mouth corners, chin."""
    lm = face.landmarks
    expected = {
        "right eye": (lm[EYE_R].mean(0), (203, 101)),
        "left eye": (lm[EYE_L].mean(0), (246, 103)),
        "nose tip": (lm[30], (223, 124)),
        "mouth corner R": (lm[48], (199, 138)),
        "mouth corner L": (lm[54], (247, 141)),
        "chin": (
            lm[8],
            (222, 179),
        ),  # the chin's lower edge, where 300-W puts it (the index table's was 6 px up)
    }
    for name, (got, want) in expected.items():
        assert np.linalg.norm(got - want) < 4, f"{name}: {got} vs {want}"


def test_mirrored_image_gives_mirrored_landmarks(detector, sample_image, face):
    mirrored = detector.detect(sample_image[:, ::-1])[0].landmarks
    err = np.linalg.norm(flip_landmarks(mirrored, sample_image.shape[1]) - face.landmarks, axis=1)
    assert err.mean() < 0.04 * _iod(face.landmarks)


def test_flip_permutation_is_an_involution():
    assert sorted(IBUG68_FLIP) == list(range(68))
    assert (IBUG68_FLIP[IBUG68_FLIP] == np.arange(68)).all()


@pytest.mark.parametrize("kind", ["noise", "flat"])
def test_no_face_gives_empty_list(detector, kind):
    rng = np.random.default_rng(0)
    image = (
        rng.integers(0, 256, (480, 640, 3), np.uint8)
        if kind == "noise"
        else np.full((480, 640, 3), 128, np.uint8)
    )
    assert detector.detect(image) == []
    with pytest.raises(NoFaceError, match="no face found in noise.png"):
        detect_largest(image, detector, source="noise.png")


def test_gray_rgba_and_float_inputs(detector, sample_image, face):
    gray = cv2.cvtColor(sample_image, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([sample_image, np.full(sample_image.shape[:2], 255, np.uint8)])
    wide = sample_image.astype(np.uint16) * 257
    for image, tol in (
        (gray, 0.1),
        (gray[:, :, None], 0.1),
        (rgba, 1e-3),
        (sample_image / 255.0, 0.02),
        (wide, 1e-3),
    ):
        got = detector.detect(image)
        assert len(got) == 1
        assert np.abs(got[0].landmarks - face.landmarks).mean() < tol * _iod(face.landmarks)


def test_bad_shapes_are_refused(detector):
    with pytest.raises(ValueError, match="shape"):
        detector.detect(np.zeros((4, 4, 5), np.uint8))


def test_huge_image_is_downscaled(detector, sample_image, face):
    small, scale = shrink(np.zeros((3000, 2000, 3), np.uint8))
    assert small.shape[:2] == (1280, 853) and scale == pytest.approx(1280 / 3000)
    huge = cv2.resize(sample_image, (2560, 2560), interpolation=cv2.INTER_CUBIC)
    got = detector.detect(huge)
    assert len(got) == 1
    expected = (face.landmarks + 0.5) * 5 - 0.5
    assert np.abs(got[0].landmarks - expected).mean() < 0.03 * 5 * _iod(face.landmarks)


def test_small_face_is_found_on_tiles(detector, sample_image, face):
    canvas = np.full((1024, 1024, 3), 200, np.uint8)
    canvas[300:812, 400:912] = sample_image  # the face is ~1/10 of the frame: too small for one pass
    got = detector.detect(canvas)
    assert len(got) == 1
    assert np.abs(got[0].landmarks - (face.landmarks + [400, 300])).mean() < 2


def test_largest_face_first(detector, sample_image):
    head = sample_image[30:250, 110:330]
    canvas = np.full((420, 700, 3), 200, np.uint8)
    canvas[160:380, 20:240] = head
    canvas[:400, 280:680] = cv2.resize(head, (400, 400), interpolation=cv2.INTER_CUBIC)
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].box[0] > 280 > faces[1].box[2]


def test_blazeface_anchor_layout():
    anchors = detect.blazeface_anchors()
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[0], [1 / 32, 1 / 32]) and np.allclose(anchors[512], [1 / 16, 1 / 16])


def test_weighted_nms_merges_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.zeros((3, 6, 2), np.float32)
    merged = detect.weighted_nms(boxes, keypoints, np.array([0.9, 0.9, 0.6]))
    assert len(merged) == 2
    assert np.allclose(merged[0][0], [0.5, 0, 10.5, 10]) and merged[1][2] == pytest.approx(0.6)


def test_backend_choice_and_reasons():
    status = backend_status()
    assert list(status) == ["mediapipe-tflite", "face-alignment", "dlib", "opencv-haar"]
    assert status["mediapipe-tflite"] is None and status["opencv-haar"] is None
    with pytest.raises(ValueError, match="unknown detector backend"):
        create_detector("nope")
    for name, reason in status.items():
        if reason is not None:
            with pytest.raises(RuntimeError, match="unavailable"):
                create_detector(name)


@pytest.mark.skipif(importlib.util.find_spec("face_alignment") is None, reason="face-alignment not installed")
def test_face_alignment_needs_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert "not found" in backend_status()["face-alignment"]  # and nothing was downloaded
    assert not any(tmp_path.rglob("*.pth*"))


def test_haar_backend_is_rough_but_placed(sample_image, face):
    haar = create_detector("opencv-haar")
    got = haar.detect(sample_image)
    assert len(got) == 1
    err = np.linalg.norm(got[0].landmarks - face.landmarks, axis=1).mean()
    assert err < 0.2 * _iod(face.landmarks)
    assert haar.detect(np.full((300, 300, 3), 90, np.uint8)) == []


def test_video_frames_are_all_detected_with_little_jitter(detector, shared_data):
    av = pytest.importorskip("av")
    landmarks = []
    with av.open(str(shared_data / "faces" / "video_short.mp4")) as video:
        for i, frame in enumerate(video.decode(video=0)):
            if i == 40:
                break
            faces = detector.detect(frame.to_ndarray(format="rgb24"))
            assert len(faces) == 1, f"frame {i}"
            landmarks.append(faces[0].landmarks)
    lm = np.array(landmarks)
    residual = lm[1:-1] - (lm[:-2] + lm[2:]) / 2  # second difference: jitter, not motion
    iod = np.mean([_iod(x) for x in lm])
    assert np.linalg.norm(residual, axis=2).mean() < 0.01 * iod
