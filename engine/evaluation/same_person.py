"""Does a method know who it sees? Several photos of each person (one folder per person).

For every photo: the neutral shape (identity only, expression removed) and the albedo map. The
figure is the ratio of the mean distance between two photos of the same person to the mean
distance between photos of two different people: 1.0 means the method knows nothing of identity,
0 that each person gets exactly one shape (one albedo) whatever the photo. Shape distance: RMS
vertex distance in cm; albedo distance: RMS over the UV chart, after scaling each map to the
same mean (a global colour cast is the light's, not the person's).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch


def person_photos(folder: Path) -> list[Path]:
    """The photos of one person's folder, sorted by name."""
    from engine.io.formats import IMAGE_SUFFIXES

    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def person_folders(root: Path, min_photos: int = 2, pattern: str = "*") -> list[Path]:
    folders = sorted(p for p in Path(root).glob(pattern) if p.is_dir())
    return [folder for folder in folders if len(person_photos(folder)) >= min_photos]


def within_between(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean pairwise RMS distance within labels and between labels, and their ratio."""
    flat = features.reshape(len(features), -1).astype(np.float64)
    sq = (flat**2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * flat @ flat.T, 0) / flat.shape[1])
    same = labels[:, None] == labels[None]
    off = ~np.eye(len(labels), dtype=bool)
    within, between = dist[same & off].mean(), dist[~same].mean()
    return {"within": float(within), "between": float(between), "ratio": float(within / between)}


def _per_photo(recon, image_path: Path, chart: torch.Tensor):
    from engine.io.image import load_image
    from engine.render.uv import chart_brightness_normalised

    rec = recon.reconstruct(load_image(image_path))
    p = rec.params
    neutral = recon.model.vertices(
        p.identity.to(recon.device), torch.zeros_like(p.expression).to(recon.device)
    )
    albedo = torch.nn.functional.interpolate(p.albedo.cpu(), size=chart.shape[-2:], mode="area")
    albedo = chart_brightness_normalised(albedo, chart)[0] * 0.5  # the same mean (0.5) per map
    return neutral[0].cpu().numpy(), albedo.numpy()


def evaluate_same_person(
    root: Path,
    methods: list[str] | None = None,
    weights: dict | None = None,
    device: str = "cpu",
    max_photos: int = 12,
    progress: bool = True,
    pattern: str = "*",
) -> dict:
    from tqdm import tqdm

    from engine.evaluation.common import machine_info, method_reconstructors, uv_chart_mask

    started = time.perf_counter()
    folders = person_folders(root, pattern=pattern)
    if len(folders) < 2:
        raise FileNotFoundError(f"{root}: needs two or more person folders with two or more photos each")
    recons, skipped = method_reconstructors(methods or ["fit", "cest"], weights or {}, device, "auto")
    results = {}
    for name, recon in recons.items():
        chart = uv_chart_mask(recon.model, 64).cpu()[0]
        shapes, albedos, labels, failed = [], [], [], 0
        for label, folder in enumerate(tqdm(folders, desc=name, unit="person", disable=not progress)):
            photos = person_photos(folder)[:max_photos]
            for photo in photos:
                try:
                    shape, albedo = _per_photo(recon, photo, chart)
                except Exception:  # no face / unreadable: counted, left out
                    failed += 1
                    continue
                shapes.append(shape)
                albedos.append(albedo)
                labels.append(label)
        if len(set(labels)) < 2:
            raise RuntimeError(f"{name}: fewer than two people reconstructed ({failed} photos failed)")
        labels_arr = np.array(labels)
        results[name] = {
            "photos": len(labels),
            "failed": failed,
            "shape_cm": within_between(np.array(shapes), labels_arr),
            "albedo": within_between(np.array(albedos), labels_arr),
        }
    return {
        "benchmark": "same-person",
        "folder": str(root),
        "pattern": pattern,
        "people": len(folders),
        "methods": results,
        "skipped": skipped,
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
    }


def same_person_markdown(results: dict) -> str:
    lines = [
        f"# Same person, several photos: {results['people']} people ({results['folder']})",
        "",
        "Within-person / between-person distance (lower is better; 1.0 = knows nothing of identity).",
        "",
        "| method | photos | shape ratio | shape within / between (cm) | albedo ratio | albedo within / between |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["methods"].items():
        s, a = r["shape_cm"], r["albedo"]
        lines.append(
            f"| {name} | {r['photos']} | {s['ratio']:.3f} | {s['within']:.3f} / {s['between']:.3f} | "
            f"{a['ratio']:.3f} | {a['within']:.4f} / {a['between']:.4f} |"
        )
    return "\n".join(lines) + "\n"
