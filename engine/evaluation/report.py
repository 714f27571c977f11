"""Results as files: the JSON, the markdown table, breakdown plots and example images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.evaluation.synthetic import METRICS
from engine.render import Renderer


def public(results: dict) -> dict:
    return {k: v for k, v in results.items() if not k.startswith("_")}


def _fmt(stats, digits: int = 2) -> str:
    if not isinstance(stats, dict) or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown_table(results: dict) -> str:
    """The synthetic results as Markdown (mean ± std over images)."""
    m = results["machine"]
    lm = results["landmarks"]
    lines = [
        f"# Synthetic benchmark: {results['n']} held-out faces (seed {results['seed']}, "
        f"{results['image_size']} px)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads); "
        f"run took {results['seconds']:.0f} s.",
        "",
        "| method | " + " | ".join(METRICS.values()) + " | s/face |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for name, row in results["results"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} |" + " |" * (len(METRICS)))
            continue
        cells = [_fmt(row[k], 3 if k.startswith("albedo") else 2) for k in METRICS]
        spf = row.get("seconds_per_face")
        timing = f"{spf * 1000:.0f} ms" if spf else "n/a"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {timing} |")
    blanks = " |" * list(METRICS).index("nme")  # the columns before the landmark ones
    lines.append(
        f"| input landmarks |{blanks} {_fmt(results['input_landmarks_nme'])} | "
        f"{_fmt(results['input_landmarks_nme_inner'])} | |"
    )
    counts = ", ".join(f"{v} {k}" for k, v in lm["counts"].items())
    lines += [
        "",
        f"Landmarks given to every method: {counts} (detector `{lm['detector']}`; it found a face in "
        f"{lm['detector_found']} of {results['n']} images). Fallback: ground truth + Gaussian noise, "
        f"sigma {lm['fallback_noise_sigma_iod_mean']:.4f} IOD RMS ({lm['fallback_noise_sigma_from']}).",
        "",
        "Definitions:",
        "",
    ]
    lines += [f"- **{k}**: {v}" for k, v in results["definitions"].items()]
    if results.get("references"):
        lines += ["", "Reference rows (not methods: they are given part of the truth):", ""]
        lines += [f"- **{k}**: {v}" for k, v in results["references"].items()]
    notes = [
        f"- {name}: {row['info']['warning']}"
        for name, row in results["results"].items()
        if isinstance(row.get("info"), dict) and "warning" in row["info"]
    ]
    if notes:
        lines += ["", "Warnings:", ""] + notes
    return "\n".join(lines) + "\n"


def write_results(results: dict, out: Path, stem: str = "synthetic_eval") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(public(results), indent=1) + "\n")
    md_path.write_text(markdown_table(results))
    return [json_path, md_path]


# -------------------------------------------------------------------------------------- plots


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres, means, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (x >= lo) & (x < hi) & np.isfinite(y)
        if sel.any():
            centres.append((lo + hi) / 2)
            means.append(y[sel].mean())
            counts.append(int(sel.sum()))
    return np.array(centres), np.array(means), np.array(counts)


def plot_breakdowns(results: dict, out: Path, stem: str = "synthetic") -> list[Path]:
    """Error per yaw and per light direction (azimuth, elevation), one panel per metric, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["per_image"]
    names = [n for n, r in results["results"].items() if "skipped" not in r]
    axes_spec = {
        "yaw": ("yaw_deg", np.arange(-75, 76, 15), "yaw (degrees)"),
        "light_azimuth": (
            "light_azimuth_deg",
            np.arange(-90, 91, 30),
            "light azimuth (degrees, + = viewer's right)",
        ),
        "light_elevation": (
            "light_elevation_deg",
            np.arange(-30, 61, 15),
            "light elevation (degrees, + = above)",
        ),
    }
    shown = ["side", "mad", "albedo", "nme"]
    paths = []
    for key, (field_name, edges, label) in axes_spec.items():
        x = np.array([r[field_name] for r in rows])
        fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4))
        for ax, metric in zip(axes, shown):
            for name in names:
                y = np.array(
                    [
                        np.nan if r["methods"][name][metric] is None else r["methods"][name][metric]
                        for r in rows
                    ]
                )
                c, m, _ = _binned(x, y, edges)
                ax.plot(c, m, marker="o", label=name)
            ax.set_title(METRICS[metric])
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        counts = np.histogram(x, edges)[0]
        axes[0].legend(fontsize=8)
        fig.suptitle(
            f"error per {key.replace('_', ' ')} ({results['n']} faces; per bin: "
            f"{', '.join(str(c) for c in counts)})",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"{stem}_error_vs_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _normal_rgb(normals: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    img = (normals * 0.5 + 0.5) * mask + (1 - mask)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


@torch.no_grad()
def save_examples(results: dict, out: Path, count: int = 6, stem: str = "synthetic") -> Path | None:
    """Input | truth (normals, albedo-shaded render) | per method: re-render over the input, normals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    testset, ran, model = results["_testset"], results["_methods"], results["_model"]
    inputs = results["_inputs"]
    ran = {k: v for k, v in ran.items() if v.params is not None}
    count = min(count, len(testset))
    if count == 0:
        return None
    renderer = Renderer(model.faces, model.uvs)
    size = testset.size
    idx = list(range(count))
    columns = (
        ["input + landmarks", "true normals"] + [f"{n}: render" for n in ran] + [f"{n}: normals" for n in ran]
    )
    fig, axes = plt.subplots(count, len(columns), figsize=(1.9 * len(columns), 1.95 * count), squeeze=False)
    renders = {}
    for name, res in ran.items():
        p = res.params.select(slice(0, count))
        _, cam, ndc = p.geometry(model)
        renders[name] = renderer.render(cam, ndc, p.albedo, p.light, size, background=testset.images[:count])
    for r, i in enumerate(idx):
        panels = [
            testset.images[i].permute(1, 2, 0).numpy(),
            _normal_rgb(testset.normals[i], testset.mask[i]),
        ]
        panels += [renders[n].image[r].clamp(0, 1).permute(1, 2, 0).numpy() for n in ran]
        panels += [_normal_rgb(renders[n].normals[r], renders[n].mask[r]) for n in ran]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
        lm = inputs.landmarks[i].numpy()
        axes[r, 0].scatter(lm[:, 0], lm[:, 1], s=1.5, c="lime" if inputs.source[i] == "detector" else "red")
        row = results["per_image"][i]
        axes[r, 0].set_ylabel(f"#{i} yaw {row['yaw_deg']:.0f}°", fontsize=7)
        for c, name in enumerate(ran):
            mm = row["methods"][name]
            axes[r, 2 + len(ran) + c].set_xlabel(f"MAD {mm['mad']:.1f} SIDE {mm['side']:.2f}", fontsize=6)
    fig.tight_layout()
    path = out / f"{stem}_examples.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
