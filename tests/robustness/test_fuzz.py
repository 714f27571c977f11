"""Property-based fuzzing of the two entry points every input goes through.

- ``engine.io.image.load_image`` on random bytes and on mutated real PNG / JPEG / GIF / BMP / TIFF /
  WebP files (truncated, bytes flipped, chunks spliced): it returns an HxWx3 uint8 image or raises
  ``ImageReadError`` — nothing else.
- the ``auto`` detector's ``detect`` on random small arrays of many shapes, dtypes and channel
  counts: it returns a list of faces (largest first, finite landmarks) or raises ``ValueError``.

Bounded: a fixed number of examples and a per-example deadline, derandomised so a run is repeatable.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.errors import ImageReadError
from engine.io.image import load_image

# CEST_FUZZ_EXAMPLES=2000 CEST_FUZZ_RANDOM=1 for a longer, non-repeatable hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("CEST_FUZZ_EXAMPLES", 60)),
    deadline=2000,
    derandomize=not os.environ.get("CEST_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRIED: dict[str, int] = {}


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    out = {}
    for fmt, mode, options in [
        ("PNG", "RGB", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "I;16", {}),
        ("JPEG", "RGB", {}),
        ("JPEG", "CMYK", {}),
        ("JPEG", "L", {"progressive": True}),
        ("GIF", "P", {}),
        ("BMP", "RGB", {}),
        ("TIFF", "RGB", {}),
        ("WEBP", "RGB", {}),
    ]:
        img = Image.fromarray(rgb)
        img = img.convert(mode) if mode != "I;16" else Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        if fmt == "JPEG":  # EXIF with an orientation, so the mutations reach the EXIF parser too
            exif = img.getexif()
            exif[0x0112] = 6
            options = {**options, "exif": exif}
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **options)
        out[f"{fmt}-{mode}"] = buffer.getvalue()
    return out


SEEDS = _seeds()


@st.composite
def mutated_files(draw):
    """A real small image file, then truncated, bytes overwritten, a chunk repeated or removed."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice", "delete"]))
        n = len(data)
        if n < 2:
            break
        i = draw(st.integers(0, n - 1))
        if kind == "truncate":
            data = data[:i]
        elif kind == "flip":
            data[i] = draw(st.integers(0, 255))
        elif kind == "splice":
            j = draw(st.integers(i, min(n, i + 64)))
            data = data[:j] + data[i:j] + data[j:]
        else:
            data = data[:i] + data[i + draw(st.integers(1, 32)) :]
    return bytes(data)


def _check_load(tmp_path, data: bytes, suffix: str, tag: str) -> None:
    TRIED[tag] = TRIED.get(tag, 0) + 1
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = load_image(path)
        except ImageReadError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
            return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".gif", ".bin", ""]))
def test_load_image_random_bytes(tmp_path, data, suffix):
    _check_load(tmp_path, data, suffix, "load_image random bytes")


@FUZZ
@given(data=mutated_files())
def test_load_image_mutated_files(tmp_path, data):
    _check_load(tmp_path, data, ".img", "load_image mutated files")


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.int8]))
    ndim = draw(st.sampled_from([0, 1, 2, 3, 3, 3, 4]))
    shape = tuple(draw(st.integers(0, 48)) for _ in range(ndim))
    if ndim == 3 and draw(st.booleans()):
        shape = shape[:2] + (draw(st.sampled_from([1, 2, 3, 4])),)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if np.issubdtype(dtype, np.floating):
        scale = draw(st.sampled_from([1.0, 255.0, 1e6]))
        values = rng.normal(0.5, 0.5, shape) * scale
        if draw(st.booleans()) and values.size:
            values.flat[rng.integers(0, values.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return values.astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.fixture(scope="module")
def detector():
    from engine.detect import create_detector

    return create_detector("auto")


@FUZZ
@given(image=arrays())
def test_detector_random_arrays(detector, image):
    TRIED["detect random arrays"] = TRIED.get("detect random arrays", 0) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            faces = detector.detect(image)
        except ValueError as err:
            assert str(err)
            return
    assert isinstance(faces, list)
    areas = [float(np.prod(f.box[2:] - f.box[:2])) for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face in faces:
        assert face.landmarks.shape == (68, 2) and np.isfinite(face.landmarks).all()


def test_report_fuzz_counts():
    """Not a check: prints how many cases the fuzzers tried (pytest -s shows it)."""
    print("fuzz cases tried:", TRIED)
