"""The files of one reconstruction: meshes, parameter JSON, maps and a side-by-side preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.io import mesh as export
from engine.lighting import LightSettings, settings_to_sh
from engine.reconstruct.reconstructor import Reconstruction, Reconstructor, to_uint8
from engine.render import RenderOutput

MAP_NAMES = ("depth", "normals", "albedo", "shading")


def render_views(reconstructor: Reconstructor, recon: Reconstruction) -> dict[str, np.ndarray]:
    """Crop-size uint8 images: input, render (over the input), albedo, shading, normals, depth, overlay.

    One decoding of the geometry (kept on ``recon``) and one rasterisation serve every view: the
    overlay re-shades the render's pixels grey.
    """
    crop = recon.crop_tensor()
    size = crop.shape[-1]
    geometry = reconstructor.face_geometry(recon)
    out = reconstructor.render(recon.params, size, crop.to(reconstructor.device), geometry)
    views = {
        "input": recon.crop,
        "render": to_uint8(out.image),
        "albedo": to_uint8(out.albedo),
        "shading": to_uint8(display_shading(out)),
        "normals": to_uint8((out.normals + 1) / 2 * out.mask),
        "depth": depth_image(out),
        "overlay": mesh_overlay(reconstructor, recon, crop, out),
    }
    return views


def display_shading(out: RenderOutput) -> torch.Tensor:
    """Shading scaled so its brightest 1% inside the face reaches white (PNG cannot hold > 1)."""
    return normalised_shading(out.shading, out.mask)


def normalised_shading(shading: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) shading divided by its 99th percentile inside ``mask``, then clamped to [0, 1]:
    the one rule of shading.png, for the CLI and the app alike."""
    return (shading / shading_peak(shading, mask)).clamp(0, 1) * (mask > 0)


def shading_peak(shading: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The 99th percentile of (1, 3, H, W) grey shading inside ``mask``: what shows as white."""
    inside = shading.mean(1, keepdim=True)[mask > 0]
    peak = torch.quantile(inside, 0.99) if inside.numel() else shading.new_tensor(1.0)
    return peak.clamp_min(1e-3)


def depth_image(out: RenderOutput) -> np.ndarray:
    """Depth as 8-bit grey (near = bright) inside the face, black outside."""
    return depth_to_grey(out.depth, out.mask)


def depth_to_grey(depth: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(1, 1, H, W) depth and mask -> HxWx3 uint8, near = bright, the face spanning 0.15..1."""
    depth, mask = depth[0, 0], mask[0, 0] > 0
    if not mask.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo, hi = depth[mask].min(), depth[mask].max()
    grey = ((depth - lo) / (hi - lo).clamp_min(1e-6) * 0.85 + 0.15) * mask
    return to_uint8(grey[None].expand(3, -1, -1))


def mesh_overlay(
    reconstructor: Reconstructor,
    recon: Reconstruction,
    crop: torch.Tensor,
    rendered: RenderOutput | None = None,
) -> np.ndarray:
    """The bare geometry, grey and lit from the front-left, blended over the input (``rendered``: a
    render of ``recon`` at the crop's size, whose pixels are re-shaded instead of rasterised again)."""
    grey = torch.full_like(recon.params.albedo, 0.8)
    light = settings_to_sh(LightSettings(-30, 20, 0.7, 0.35))
    if rendered is not None:
        device = reconstructor.device
        out = reconstructor.renderer.shade(rendered, grey.to(device), light.to(device))
    else:
        shaded = recon.params.replace(albedo=grey, light=light)
        out = reconstructor.render(shaded, crop.shape[-1], geometry=reconstructor.face_geometry(recon))
    blend = crop * (1 - 0.75 * out.mask) + out.image.clamp(0, 1).cpu() * 0.75 * out.mask
    return to_uint8(blend)


PREVIEW_PANELS = (
    ("input", "input"),
    ("render", "re-rendered"),
    ("albedo", "albedo"),
    ("shading", "shading"),
    ("overlay", "mesh"),
)


def preview_strip(views: dict[str, np.ndarray]) -> np.ndarray:
    """input | re-rendered | albedo | shading | mesh overlay, side by side, each labelled."""
    return np.concatenate([label_panel(views[key], text) for key, text in PREVIEW_PANELS], axis=1)


def label_panel(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` in white on a dark box in its top-left corner."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, image.shape[0] / 640), 1
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    out[: h + base + 6, : w + 8] //= 3
    cv2.putText(out, text, (4, h + 3), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def write_reconstruction(
    reconstructor: Reconstructor, recon: Reconstruction, out_dir: str | Path, formats=export.MESH_FORMATS
) -> list[Path]:
    """Write face.obj/.mtl/_albedo.png, face.ply, face.glb, params.json, the maps and preview.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mesh = reconstructor.mesh(recon.params, geometry=reconstructor.face_geometry(recon))
    written = []
    for fmt in formats:
        written += export.write_mesh(mesh, out_dir / f"face.{fmt}", fmt)
    views = render_views(reconstructor, recon)
    for name in MAP_NAMES:
        written.append(export.write_png(views[name], out_dir / f"{name}.png"))
    written.append(export.write_png(preview_strip(views), out_dir / "preview.png"))
    written.append(export.write_json(params_record(recon), out_dir / "params.json"))
    return written


def params_record(recon: Reconstruction, frame: int | None = None) -> dict:
    """What params.json (or one JSON line of a video) holds."""
    record = {
        "source": recon.source,
        "method": recon.method,
        "face_box_xyxy": [round(float(v), 2) for v in recon.face.box],
        "landmarks_68_xy": np.round(recon.face.landmarks, 2).tolist(),
        "crop_centre_side_px": [
            round(v, 2) for v in (recon.crop_box.cx, recon.crop_box.cy, recon.crop_box.side)
        ],
        **recon.params.to_json(),
    }
    if frame is not None:
        record = {"frame": frame, **record}
    return record
