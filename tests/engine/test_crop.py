"""Face crops: framing from landmarks, image <-> crop <-> NDC maps, the crop itself, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from engine.camera import ndc_to_pixels, pixels_to_ndc  # one definition, used by the crop maps too
from engine.crop import (
    FACE_FILL,
    CropBox,
    CropSmoother,
    crop_face,
    crop_image,
    crop_params_from_landmarks,
    crop_to_image,
    image_to_crop,
    image_to_ndc,
    ndc_to_image,
)

RNG = np.random.default_rng(0)


def _landmarks(x0=100.0, y0=50.0, w=80.0, h=100.0) -> np.ndarray:
    points = RNG.uniform([x0, y0], [x0 + w, y0 + h], (68, 2))
    points[:2] = [[x0, y0], [x0 + w, y0 + h]]  # pin the extent
    return points


def test_framing_fills_a_fixed_fraction():
    box = crop_params_from_landmarks(_landmarks())
    assert (box.cx, box.cy) == pytest.approx((140, 100))
    assert box.side == pytest.approx(100 / FACE_FILL)
    with pytest.raises(ValueError):
        crop_params_from_landmarks(np.zeros((68, 2)))


def test_point_maps_round_trip():
    box = CropBox(123.4, 87.6, 151.3)
    points = RNG.uniform(-50, 300, (68, 2))
    for size in (64, 224, 256):
        crop = image_to_crop(points, box, size)
        assert np.allclose(crop_to_image(crop, box, size), points)
        assert np.allclose(ndc_to_pixels(pixels_to_ndc(crop, size), size), crop)
        assert np.allclose(
            pixels_to_ndc(crop, size), image_to_ndc(points, box)
        )  # NDC does not depend on size
        assert np.allclose(ndc_to_image(image_to_ndc(points, box), box), points)


def test_ndc_follows_the_conventions():
    size = 128
    assert ndc_to_pixels(np.array([-1.0, 1.0]), size) == pytest.approx(
        [-0.5, size - 0.5]
    )  # outer pixel edges
    box = CropBox(10.0, 20.0, 8.0)
    assert image_to_ndc(np.array([[6.0, 24.0]]), box) == pytest.approx(
        np.array([[-1.0, 1.0]])
    )  # x left, y down


def test_whole_image_crop_is_identity(sample_image):
    box = CropBox(255.5, 255.5, 512.0)
    assert np.array_equal(crop_image(sample_image, box, 512), sample_image)


def test_grid_aligned_crop_equals_slice(sample_image):
    crop = crop_image(sample_image, CropBox(149.5, 219.5, 100.0), 100)
    assert np.array_equal(crop, sample_image[170:270, 100:200])


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_shrinking_averages_pixels(sample_image, factor):
    n = 510 // factor * factor
    image = sample_image[:n, :n]
    crop = crop_image(image, CropBox((n - 1) / 2, (n - 1) / 2, float(n)), n // factor)
    expected = image.reshape(n // factor, factor, n // factor, factor, 3).mean((1, 3))
    assert np.abs(crop - expected).max() <= 0.5 + 1e-6


def test_content_lands_where_the_point_map_says():
    image = np.zeros((300, 400), np.float32)
    yy, xx = np.mgrid[:300, :400]
    spot = np.array([231.3, 97.8])
    image[:] = np.exp(-((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2) / (2 * 4.0**2))
    box = CropBox(200.7, 120.2, 173.0)
    for size in (64, 173, 300):
        crop = crop_image(image, box, size)
        cy, cx = np.mgrid[:size, :size]
        weights = crop / crop.sum()
        centroid = np.array([(cx * weights).sum(), (cy * weights).sum()])
        assert np.allclose(centroid, image_to_crop(spot, box, size), atol=0.05 * size / 64)


def test_borders(sample_image):
    out = CropBox(-100.0, -100.0, 150.0)
    assert (crop_image(sample_image, out, 64, border="constant", value=7) == 7).all()
    assert (crop_image(sample_image, out, 64, border="replicate") == sample_image[0, 0]).all()
    half = crop_image(sample_image, CropBox(0.0, 255.5, 200.0), 100, border="constant")
    assert (half[:, :45] == 0).all() and half[:, 55:].any()
    with pytest.raises(ValueError, match="border"):
        crop_image(sample_image, out, 64, border="wrap")


def test_crop_agrees_with_detection_on_the_crop(sample_image):
    from engine.detect import create_detector

    detector = create_detector()
    face = detector.detect(sample_image)[0]
    crop, box = crop_face(sample_image, face.landmarks, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    again = detector.detect(crop)[0].landmarks
    mapped = image_to_crop(face.landmarks, box, 256)
    iod = np.linalg.norm(mapped[36:42].mean(0) - mapped[42:48].mean(0))
    assert np.linalg.norm(again - mapped, axis=1).mean() < 0.05 * iod
    lo, hi = mapped.min(0), mapped.max(0)
    assert (hi - lo).max() == pytest.approx(FACE_FILL * 256, rel=1e-6)


def test_smoother_steadies_a_still_face():
    smoother, truth = CropSmoother(fps=25), CropBox(200.0, 150.0, 120.0)
    raw, out = [], []
    for _ in range(100):
        noisy = CropBox(*(np.array([truth.cx, truth.cy, truth.side]) + RNG.normal(0, 1.0, 3)))
        raw.append(noisy.cx)
        out.append(smoother.update(noisy).cx)
    assert np.std(out[20:]) < 0.5 * np.std(raw[20:])


def test_smoother_follows_motion_and_restarts_on_cuts():
    smoother = CropSmoother(fps=25)
    for i in range(50):  # 0.6 face widths per second
        box = smoother.update(CropBox(100.0 + 3 * i, 100.0, 120.0))
    assert abs(box.cx - (100 + 3 * 49)) < 0.1 * 120
    cut = CropBox(400.0, 300.0, 60.0)
    assert smoother.update(cut) == cut  # a jump is a cut: no smoothing across it
    smoother.reset()
    other = CropBox(10.0, 10.0, 50.0)
    assert smoother.update(other, t=5.0) == other


def test_smoother_uses_timestamps():
    a, b = CropSmoother(fps=25), CropSmoother(fps=25)
    for i in range(10):
        a.update(CropBox(100.0 + i, 100.0, 100.0))
        b.update(CropBox(100.0 + i, 100.0, 100.0), t=i / 25)
    assert a.update(CropBox(120.0, 100.0, 100.0)) == b.update(CropBox(120.0, 100.0, 100.0), t=10 / 25)
