import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageReadError
from engine.io.image import load_image


def test_sample_loads_as_rgb8(sample_image):
    assert sample_image.dtype == np.uint8 and sample_image.shape == (512, 512, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "P"])
def test_modes_become_rgb(tmp_path, mode):
    path = tmp_path / f"img_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (40, 30)).save(path)
    image = load_image(path)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").shape == (40, 20, 3)


def test_huge_images_are_downscaled(tmp_path):
    Image.new("RGB", (6000, 3000), (10, 20, 30)).save(tmp_path / "big.jpg")
    assert max(load_image(tmp_path / "big.jpg").shape[:2]) <= 2048


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a readable image"), (b"hello, I am text", "not a readable image")],
)
def test_not_an_image_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message):
        load_image(path)


def test_truncated_jpeg_gives_a_clear_error(tmp_path, sample_image):
    Image.fromarray(sample_image).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="damaged or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "nope.png")
