"""Reading images from disk as upright 8-bit RGB, whatever the file's mode, depth or EXIF rotation."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import ImageReadError

MAX_PIXELS = 40_000 * 40_000  # decoding is cheap with draft/reduce; beyond this we refuse
# What is decoded at full size (after JPEG draft, which already shrinks by up to 8x): 21,000^2 pixels,
# 1.3 GB as RGB. A 20,000 x 20,000 PNG still loads; a small file claiming more is refused undecoded.
MAX_DECODE_PIXELS = 21_000 * 21_000
# What a damaged or hostile file can make Pillow raise besides OSError (fuzzing finds these).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    MemoryError,
)
WORKING_SIDE = 2048  # images are downscaled to this long side after decoding

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def load_image(path: str | Path, max_side: int = WORKING_SIDE) -> np.ndarray:
    """HxWx3 uint8 RGB, EXIF-rotated upright, alpha composited on white, long side <= max_side."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if not path.is_file():  # a pipe or device: opening it could block for ever
        raise ImageReadError(f"{path}: not a regular file (a pipe, socket or device)")
    try:
        with Image.open(path) as img:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced size directly
            width, height = img.size
            if width * height > MAX_DECODE_PIXELS:
                raise ImageReadError(
                    f"{path}: too large to decode ({width} x {height} pixels; "
                    f"the limit is {MAX_DECODE_PIXELS / 1e6:.0f} megapixels)"
                )
            img = ImageOps.exif_transpose(img)
            if max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return to_rgb8(img)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({_reason(exc)})") from exc
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(f"{path}: too large to decode in the memory available") from exc
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"{path}: damaged or truncated image ({_reason(exc)})") from exc


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> HxWx3 uint8 RGB (16-bit scaled down, alpha over white, CMYK converted)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
