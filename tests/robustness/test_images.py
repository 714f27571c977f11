"""Hostile and unusual photos through load_image, the detector, Reconstructor.reconstruct(path) and
`cest reconstruct`: each gives the right result or one clear `error:` line, and a batch goes on."""

from __future__ import annotations

import json
import subprocess
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.detect import NoFaceError
from engine.errors import CestError, ImageReadError
from engine.io.image import load_image
from tests.robustness.conftest import PYTHON, ROOT, SAMPLE, error_lines, eye_geometry, jpeg_bytes

# ------------------------------------------------------------------------------------ the inputs


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_empty(folder, sample):
    return _write(folder / "empty.jpg", b"")


def make_truncated_jpeg(folder, sample):
    data = jpeg_bytes(sample, quality=90)
    return _write(folder / "truncated.jpg", data[: len(data) // 2])


def make_text_as_jpeg(folder, sample):
    return _write(folder / "notes.jpg", b"Dear diary,\nthis is not a photo.\n")


def make_alpha_png(folder, sample):
    """RGBA: the face opaque, a transparent black border (which must come out white, not black)."""
    rgba = np.dstack([sample, np.full(sample.shape[:2], 255, np.uint8)])
    rgba[:40, :, :] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    return folder / "alpha.png"


def make_png16_rgb(folder, sample):
    cv2.imwrite(str(folder / "deep16.png"), cv2.cvtColor(sample, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    return folder / "deep16.png"


def make_png16_gray(folder, sample):
    grey = np.asarray(Image.fromarray(sample).convert("L"), np.uint16) * 257
    Image.fromarray(grey).save(folder / "grey16.png")
    return folder / "grey16.png"


def make_grayscale(folder, sample):
    Image.fromarray(sample).convert("L").save(folder / "grey.jpg", quality=92)
    return folder / "grey.jpg"


def make_cmyk_jpeg(folder, sample):
    Image.fromarray(sample).convert("CMYK").save(folder / "print.jpg", quality=92)
    return folder / "print.jpg"


def make_exif_rotated(folder, sample, name="phone.jpg"):
    """What a phone writes when held sideways: the pixels turned 90 degrees, EXIF orientation 6
    ("turn 90 degrees clockwise to display")."""
    stored = Image.fromarray(sample).rotate(90, expand=True)  # counter-clockwise
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(folder / name, quality=92, exif=exif)
    return folder / name


def make_tiny(folder, sample):
    Image.fromarray(sample).resize((20, 20), Image.Resampling.LANCZOS).save(folder / "tiny.png")
    return folder / "tiny.png"


def make_no_face(folder, sample):
    rng = np.random.default_rng(1)
    sky = np.linspace(60, 220, 300)[:, None, None] * np.array([0.4, 0.6, 1.0])
    sky = sky + rng.normal(0, 3, (300, 400, 3))
    Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)).save(folder / "sky.png")
    return folder / "sky.png"


def two_faces(sample) -> np.ndarray:
    """The sample's face pasted twice: small on the left, 1.5x larger on the right."""
    face = Image.fromarray(sample).crop((120, 20, 330, 250))
    canvas = Image.new("RGB", (800, 400), (128, 128, 128))
    canvas.paste(face, (20, 40))
    big = face.resize((315, 345), Image.Resampling.LANCZOS)
    canvas.paste(big, (800 - big.width - 20, 0))
    return np.asarray(canvas)


def make_two_faces(folder, sample):
    Image.fromarray(two_faces(sample)).save(folder / "pair.png")
    return folder / "pair.png"


def make_non_ascii(folder, sample):
    path = folder / "Ünïcödé fötos 写真" / "ästronaut ü 1.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample).save(path)
    return path


def make_spaces(folder, sample):
    path = folder / "my photos" / "  two  spaces .jpg"
    _write(path, jpeg_bytes(sample, quality=92))
    return path


# name -> (maker, what must come of it: "face", or the message of the one error line)
CASES = {
    "empty": (make_empty, "not a readable image"),
    "truncated_jpeg": (make_truncated_jpeg, "damaged or truncated image"),
    "text_as_jpeg": (make_text_as_jpeg, "not a readable image"),
    "alpha_png": (make_alpha_png, "face"),
    "png16_rgb": (make_png16_rgb, "face"),
    "png16_gray": (make_png16_gray, "face"),
    "grayscale": (make_grayscale, "face"),
    "cmyk_jpeg": (make_cmyk_jpeg, "face"),
    "exif_rotated": (make_exif_rotated, "face"),
    "tiny_20x20": (make_tiny, "no face found"),  # 20 px is below any detector's reach: say so
    "no_face": (make_no_face, "no face found"),
    "two_faces": (make_two_faces, "face"),
    "non_ascii_path": (make_non_ascii, "face"),
    "spaces_in_path": (make_spaces, "face"),
}
GOOD = [name for name, (_, want) in CASES.items() if want == "face"]
BAD = [name for name, (_, want) in CASES.items() if want != "face"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, sample) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    return {name: make(folder, sample) for name, (make, _) in CASES.items()}


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory, sample) -> Path:
    """20,000 x 20,000 JPEG (400 megapixels) with the sample's face filling it; greyscale, which is a
    third of the work to make (the decoder's draft mode treats it like colour)."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    big = Image.fromarray(sample).convert("L").resize((20_000, 20_000), Image.Resampling.NEAREST)
    big.save(path, quality=50)
    del big
    return path


# --------------------------------------------------------------------------------- load_image


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load_as_upright_rgb8(inputs, sample, name):
    image = load_image(inputs[name])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if name == "two_faces":
        return
    assert image.shape[:2] == sample.shape[:2]  # EXIF turned back, nothing cropped or scaled
    ref = sample.astype(float)
    if name in ("grayscale", "png16_gray"):
        ref = np.repeat(np.asarray(Image.fromarray(sample).convert("L"), float)[..., None], 3, 2)
    diff = np.abs(image.astype(float) - ref)
    if name == "alpha_png":
        assert (image[:40] == 255).all(), "transparent pixels must come out white"
        diff = diff[40:]
    tolerance = {"png16_rgb": 0.01, "png16_gray": 0.01, "alpha_png": 0.01, "non_ascii_path": 0.01}
    assert diff.mean() < tolerance.get(name, 6), f"{name}: mean difference {diff.mean():.2f}"


@pytest.mark.parametrize("name", BAD[:3])
def test_unreadable_files_raise_one_line(inputs, name):
    with pytest.raises(ImageReadError) as info:
        load_image(inputs[name])
    message = str(info.value)
    assert message.startswith(str(inputs[name])) and CASES[name][1] in message and "\n" not in message


def test_every_exif_orientation_comes_out_upright(tmp_path, sample):
    """The eight EXIF orientations: pixels stored turned/mirrored, tag saying how to undo it."""
    small = Image.fromarray(sample).resize((96, 64))  # not square, so a missed turn changes the shape
    # orientation -> the PIL transpose that makes stored pixels from the upright picture
    store = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    for orientation, op in store.items():
        stored = small.transpose(op) if op is not None else small.copy()
        exif = stored.getexif()
        exif[0x0112] = orientation
        stored.save(tmp_path / f"o{orientation}.png", exif=exif)
        image = load_image(tmp_path / f"o{orientation}.png")
        assert image.shape == (64, 96, 3), orientation
        assert np.abs(image.astype(int) - np.asarray(small, int)).max() == 0, orientation


def test_exif_rotated_phone_photo_gives_an_upright_face(inputs, landmark_fit):
    fast_reconstructor = landmark_fit
    image = load_image(inputs["exif_rotated"])
    faces = fast_reconstructor.detector.detect(image)
    assert faces
    angle, eyes_above_mouth = eye_geometry(faces[0].landmarks)
    assert abs(angle) < 10, f"eye line at {angle:.1f} degrees"
    assert eyes_above_mouth > 20
    # and the reconstruction is upright too: little roll, and the re-projected face looks like the input
    recon = fast_reconstructor.reconstruct(inputs["exif_rotated"])
    pitch, yaw, roll = recon.params.rotation[0].tolist()
    assert abs(roll) < 0.2 and abs(yaw) < 0.4


def test_huge_image_does_not_blow_up_memory(huge_jpeg):
    """20,000 x 20,000 pixels (1.2 GB as RGB): JPEG draft decoding and the detector's downscale keep
    the peak well under the 2.5 GB bound; run in a fresh process to read its own peak RSS."""
    code = textwrap.dedent("""
        import json, resource, sys
        from engine.io.image import load_image
        from engine.detect import create_detector
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = load_image(sys.argv[1])
        faces = create_detector("auto").detect(image)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"shape": image.shape, "faces": len(faces), "before_kb": before, "peak_kb": peak,
                          "box": faces[0].box.tolist() if faces else None}))
    """)
    run = subprocess.run(
        [PYTHON, "-c", code, str(huge_jpeg)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert max(result["shape"]) <= 2048 and result["faces"] >= 1
    growth_gb = (result["peak_kb"] - result["before_kb"]) / 1e6
    assert result["peak_kb"] / 1e6 < 2.5 and growth_gb < 1.0, result


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    """A 700 KB PNG that claims 30,000 x 30,000 pixels (2.7 GB as RGB): refused up front."""
    side = 30_000
    raw = zlib.compressobj(1)
    row = b"\x00" + b"\x00" * (side // 8)  # filter byte + a row of 1-bit pixels
    idat = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1-bit greyscale
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path = _write(tmp_path / "bomb.png", png)
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageReadError, match="too large"):
        load_image(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KB


# ---------------------------------------------------------------- Reconstructor.reconstruct(path)


@pytest.mark.parametrize("name", list(CASES))
def test_reconstruct_path(inputs, fast_reconstructor, name):
    path, want = inputs[name], CASES[name][1]
    if want != "face":
        with pytest.raises((CestError, NoFaceError)) as info:
            fast_reconstructor.reconstruct(path)
        message = str(info.value)
        assert str(path) in message and want in message and "\n" not in message
        return
    recon = fast_reconstructor.reconstruct(path)
    assert recon.source == str(path) and recon.crop.shape == (256, 256, 3)
    assert np.isfinite(recon.params.rotation.numpy()).all()
    angle, eyes_above_mouth = eye_geometry(recon.face.landmarks)
    assert abs(angle) < 10 and eyes_above_mouth > 10, name


def test_several_faces_largest_first(inputs, fast_reconstructor):
    recons = fast_reconstructor.reconstruct(inputs["two_faces"], all_faces=True)
    assert len(recons) == 2
    spans = [np.ptp(r.face.landmarks, axis=0).max() for r in recons]
    assert spans[0] > 1.3 * spans[1]  # the 1.5x face first
    assert recons[0].face.box[0] > 400 > recons[1].face.box[2]  # ... which is the one on the right
    one = fast_reconstructor.reconstruct(inputs["two_faces"])
    assert np.allclose(one.face.box, recons[0].face.box)


def test_unpatched_on_a_non_ascii_path(inputs, tmp_path, capsys):
    """Nothing stubbed: `cest reconstruct` with the default method (the CEST networks with the shipped
    weights, else the landmark fit), and Reconstructor(method="fit").reconstruct(path), on a
    non-ASCII, space-containing path to an EXIF-rotated photo beside a broken file."""
    from engine.cli import main
    from engine.reconstruct.reconstructor import Reconstructor, default_weights

    photo = make_exif_rotated(inputs["non_ascii_path"].parent, load_image(SAMPLE), name="handy ö.jpg")
    out = tmp_path / "äusgabe out"
    assert main(["reconstruct", str(photo), str(inputs["empty"]), "-o", str(out), "--formats", "obj"]) == 1
    assert len(error_lines(capsys.readouterr().err)) == 1
    params = json.loads((out / "handy ö" / "params.json").read_text(encoding="utf-8"))
    assert params["source"] == str(photo) and params["method"] == ("cest" if default_weights() else "fit")
    angle, eyes_above_mouth = eye_geometry(np.array(params["landmarks_68_xy"]))
    assert abs(angle) < 10 and eyes_above_mouth > 20
    assert abs(params["viewpoint"]["rotation_pitch_yaw_roll_rad"][2]) < 0.25
    assert (out / "handy ö" / "face.obj").stat().st_size > 0 and (out / "handy ö" / "preview.png").exists()

    recon = Reconstructor(method="fit").reconstruct(photo)  # the real landmark fit and texture unwrap
    assert recon.method == "fit" and recon.source == str(photo)
    assert abs(float(recon.params.rotation[0, 2])) < 0.2
    assert float(recon.params.albedo.std()) > 0.01  # a texture was unwrapped from the photo


# -------------------------------------------------------------------------------- the whole batch


def test_cli_batch_of_every_kind_goes_on(inputs, huge_jpeg, tmp_path, cli, capsys):
    """Every input in one `cest reconstruct`: one error line per bad file, every good one written,
    exit status 1; `--all-faces` writes one folder per face."""
    files = [inputs[name] for name in CASES] + [huge_jpeg, tmp_path / "missing.png"]
    out = tmp_path / "out"
    status = cli(["reconstruct", *map(str, files), "-o", str(out), "--formats", "obj", "--all-faces"])
    captured = capsys.readouterr()
    errors = error_lines(captured.err)
    assert status == 1
    assert len(errors) == len(BAD) + 1, errors  # the bad kinds and the missing file, nothing else
    for name in BAD:
        assert any(str(inputs[name]) in line and CASES[name][1] in line for line in errors), name
    assert not [line for line in captured.err.splitlines() if "Traceback" in line]
    for path in [inputs[name] for name in GOOD] + [huge_jpeg]:
        params = json.loads((out / path.stem / "params.json").read_text(encoding="utf-8"))
        assert params["source"] == str(path)
    for name in BAD:
        assert not (out / inputs[name].stem).exists()
    pair = [json.loads((out / n / "params.json").read_text()) for n in ("pair", "pair_face2")]
    width = [p["face_box_xyxy"][2] - p["face_box_xyxy"][0] for p in pair]
    assert width[0] > width[1]  # largest first
    assert not (out / "pair_face3").exists() and not (out / "alpha_face2").exists()


def test_cli_exit_zero_when_all_good(inputs, tmp_path, cli):
    assert (
        cli(
            [
                "reconstruct",
                str(inputs["cmyk_jpeg"]),
                str(inputs["non_ascii_path"]),
                "-o",
                str(tmp_path / "o"),
                "--formats",
                "ply",
            ]
        )
        == 0
    )
    assert (tmp_path / "o" / "ästronaut ü 1" / "face.ply").exists()
