"""`cest eval`: accuracy against ground truth (synthetic faces) and landmark NME on annotated photos.

``cest eval --synthetic N`` renders N held-out synthetic faces (engine.training.data.synthetic, split
``heldout``: seeds disjoint from every training seed) and runs every method on the same images:

- ``cest``: the trained conditional chain (resources/weights/cest_default.safetensors or --weights);
- ``cest-unconditional``: the paper's baseline, four estimators that each see only the image
  (resources/weights/cest_unconditional.safetensors or --weights-unconditional);
- ``fit``: the landmark fit (viewpoint + shape from 68 points, albedo unwrapped and de-lit);
- ``mean``: the mean face (zero identity and expression) placed by the fit's viewpoint, flat albedo.

A method whose weights are missing is skipped and the report says so.

Landmarks fed to every method come from the real detector run on the rendered image; where it
finds no face (or a face whose landmarks are off by more than half the inter-ocular distance) they
are the ground truth plus zero-mean Gaussian noise of the detector's measured size: per point and
axis, the RMS of the detector's error on the images where it did find the face (as a fraction of the
inter-ocular distance). The report counts which images used which.

Metrics (engine.evaluation.metrics), on the face region:

- SIDE, as Unsup3D: ``sqrt(mean(d^2) - mean(d)^2)`` with ``d = log D_pred - log D_gt`` on the
  intersection of the ground-truth and predicted masks, each eroded by one pixel. Our depth is
  weak-perspective NDC z, so D is the distance a camera like Unsup3D's (fov 10 degrees, face at
  distance 1) would measure (metrics.ndc_depth_to_distance); the mean subtraction removes the
  unknown depth offset, and the log makes it scale-invariant. Reported x 10^-2, like Unsup3D.
  Also reported: the same on linear depth in centimetres of the true face (``depth_cm``).
- MAD: mean angle between the rendered camera-space normal maps, degrees, same mask.
- albedo: RMSE in UV space (the face model's UV chart, at the ground truth's texture size) after a
  least-squares per-channel colour scale; UV space compares the same point of the face whatever
  the pose and the geometry error, and includes the parts the image does not show.
- NME: mean over the 68 landmark vertices, projected, vs. the true ones, over the true
  inter-ocular distance (outer eye corners 36/45). The detector's own NME is reported too.

``cest eval --landmarks FOLDER`` scores 68-landmark NME on photos annotated with iBUG ``.pts``
files beside the images or dlib XML files: the detector, and the landmark fit's reprojection.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from engine.evaluation.common import DEFAULT_OUT, DEFAULT_WEIGHTS, METHODS
from engine.evaluation.landmarks300w import evaluate_landmarks, landmarks_markdown
from engine.evaluation.report import markdown_table, plot_breakdowns, save_examples, write_results
from engine.evaluation.synthetic import evaluate_synthetic, log

# --------------------------------------------------------------------------------------- CLI


def _detector(args):
    """The --detector backend, or the default one with the --refiner file."""
    if args.refiner is None:
        return args.detector
    from engine.detect import MediaPipeDetector

    return MediaPipeDetector(refiner=args.refiner)


def _report(results: dict, text: str, out: Path, stem: str, summary_keys: tuple[str, ...]) -> int:
    """OUT/STEM.json (everything) and OUT/STEM.md, the Markdown printed, then one JSON line last."""
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / f"{stem}.md").write_text(text)
    print(text)
    print(json.dumps({k: results[k] for k in summary_keys}))
    return 0


def _run_same_person(args, methods, weights, progress: bool, out: Path) -> int:
    from engine.evaluation.same_person import (
        evaluate_same_person,
        person_folders,
        person_photos,
        same_person_markdown,
    )

    results = evaluate_same_person(
        args.same_person, methods, weights, args.device, progress=progress, pattern=args.people
    )
    if args.plots:  # each person's first photo
        folders = person_folders(args.same_person, pattern=args.people)
        firsts = [person_photos(folder)[0] for folder in folders]
        _contact_sheet(args, methods, weights, firsts, out / "same_person_faces.png")
    return _report(
        results, same_person_markdown(results), out, "same_person", ("benchmark", "people", "methods")
    )


def _contact_sheet(args, methods, weights, paths: list[Path], png: Path) -> None:
    from engine.evaluation.contact_sheet import sheet_for_images

    methods = [m for m in (methods or ["fit", "cest", "cest-unconditional"]) if m != "mean"]
    if sheet_for_images(paths, methods, weights, args.device, _detector(args), png, args.examples):
        log.info("wrote %s", png)


def _run_aflw2000(args, methods, weights, progress: bool, out: Path) -> int:
    from engine.evaluation.aflw2000 import aflw2000_markdown, evaluate_aflw2000

    results = evaluate_aflw2000(
        args.aflw2000,
        methods,
        weights,
        args.aflw_gt,
        args.aflw_points,
        _detector(args),
        args.device,
        progress,
    )
    keys = ("benchmark", "faces", "detected", "nme_box_percent", "pose_mae_deg")
    return _report(results, aflw2000_markdown(results), out, "aflw2000", keys)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cest eval",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--synthetic", type=int, metavar="N", help="evaluate on N held-out synthetic faces")
    what.add_argument(
        "--landmarks",
        type=Path,
        metavar="FOLDER",
        help="folder of images with iBUG .pts beside them and/or dlib XML files (or one XML)",
    )
    what.add_argument(
        "--aflw2000",
        type=Path,
        metavar="DIR",
        help="AFLW2000-3D images with their .mat files (or 3DDFA's .npy arrays, see --aflw-gt)",
    )
    what.add_argument(
        "--same-person",
        type=Path,
        metavar="DIR",
        help="one folder per person with several photos: within/between-person shape and albedo distance",
    )
    p.add_argument(
        "--people", default="*", help="with --same-person: glob of the person folders (e.g. '[S-Z]*')"
    )
    p.add_argument("--aflw-gt", type=Path, help="folder of 3DDFA's AFLW2000-3D arrays (default: DIR)")
    p.add_argument(
        "--aflw-points",
        choices=("original", "reannotated"),
        default="original",
        help="which 3DDFA 2D points to score against when no .mat is present (default: original)",
    )
    p.add_argument("--seed", type=int, default=0, help="test-set seed (held-out split; default 0)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for JSON, Markdown and PNGs")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from {','.join(METHODS)} (default: all; --landmarks: fit,cest)",
    )
    p.add_argument(
        "--weights", type=Path, help="CEST weights (default resources/" + DEFAULT_WEIGHTS["cest"] + ")"
    )
    p.add_argument(
        "--weights-unconditional",
        type=Path,
        help="ablation weights (default resources/" + DEFAULT_WEIGHTS["cest-unconditional"] + ")",
    )
    p.add_argument(
        "--plots",
        action="store_true",
        help="error per yaw / light direction plots and example renders; with --landmarks or --same-person a contact sheet of the faces",
    )
    p.add_argument("--examples", type=int, default=6, help="faces in the side-by-side picture (with --plots)")
    p.add_argument("--image-size", type=int, default=128, help="synthetic image size (the training size)")
    p.add_argument("--texture-size", type=int, default=64, help="ground-truth albedo map size")
    p.add_argument("--supersample", type=int, default=1, help="anti-aliasing of the synthetic images")
    p.add_argument(
        "--references",
        action="store_true",
        help="synthetic: also score the true shape at the landmark fit's viewpoint and the mean face "
        "at the true viewpoint (what the viewpoint and the shape each cost)",
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--detector", default="auto", help="detector backend (engine.detect)")
    p.add_argument(
        "--refiner",
        type=Path,
        default=None,
        help="with --landmarks/--aflw2000: another landmark refiner file for the default detector",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--pts-zero-based", action="store_true", help=".pts files hold 0-based pixels (default: 1-based)"
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    weights = {"cest": args.weights, "cest-unconditional": args.weights_unconditional}
    progress = not args.no_progress
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.aflw2000 is not None:
        return _run_aflw2000(args, methods, weights, progress, out)
    if args.same_person is not None:
        return _run_same_person(args, methods, weights, progress, out)
    if args.landmarks is not None:
        results = evaluate_landmarks(
            args.landmarks, methods, weights, not args.pts_zero_based, _detector(args), args.device, progress
        )
        keys = ("benchmark", "faces", "detected", "figures_300w")
        if args.plots:
            found = [Path(r["image"]) for r in results["per_image"] if r["detected"]]
            _contact_sheet(args, methods, weights, found, out / "landmarks_faces.png")
        return _report(results, landmarks_markdown(results), out, "landmarks_nme", keys)
    if args.synthetic <= 0:
        print("error: --synthetic needs N > 0", file=sys.stderr)
        return 2
    if methods:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            print(f"error: unknown methods {bad}; choose from {', '.join(METHODS)}", file=sys.stderr)
            return 2
    results = evaluate_synthetic(
        args.synthetic,
        args.seed,
        methods,
        weights,
        args.image_size,
        args.texture_size,
        args.supersample,
        args.batch,
        args.detector,
        args.device,
        progress,
        keep=args.plots,
        references=args.references,
    )
    paths = write_results(results, out)
    if args.plots:
        paths += plot_breakdowns(results, out)
        if (example := save_examples(results, out, args.examples)) is not None:
            paths.append(example)
    text = markdown_table(results)
    print(text)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
