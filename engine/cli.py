"""`cest` command line: reconstruct, train, finetune, eval, bench."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.errors import CestError

log = logging.getLogger("cest")
RECONSTRUCT_THREADS = 1  # torch CPU threads `cest reconstruct` (and so `cest bench`) uses by default


def _add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct", help="reconstruct faces from photos, folders of photos or videos")
    p.add_argument("inputs", nargs="+", type=Path, help="image files, folders of images, or videos")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--method",
        choices=["auto", "cest", "fit"],
        default="auto",
        help="cest = trained networks (default when weights ship), fit = landmark fit",
    )
    p.add_argument("--weights", type=Path, help="CEST weights (.safetensors); default: the shipped ones")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--detector", default="auto", help="face detector backend (see engine/detect.py)")
    p.add_argument(
        "--threads",
        type=int,
        default=RECONSTRUCT_THREADS,
        help="torch CPU threads (default 1: on small per-face tensors more threads only wait; "
        "measured 1.5x faster than 2 on a 2-core machine)",
    )
    p.add_argument(
        "--no-detail",
        action="store_true",
        help="cest: keep the network's own (soft, 64 px) albedo, without the photo's fine detail",
    )
    p.add_argument("--all-faces", action="store_true", help="reconstruct every face, not only the largest")
    p.add_argument("--meshes", action="store_true", help="videos: also write a mesh per frame")
    p.add_argument(
        "--preview-video",
        action="store_true",
        help="videos: also write reconstruction.mp4 (input crop | re-rendered face, every frame; "
        "rendering it costs about a third of the time per frame)",
    )
    p.add_argument(
        "--animation",
        action="store_true",
        help="videos: also write animation.glb (textured head, expressions as morph targets, "
        "animated) and blendshapes.csv (ARKit curves, Live Link Face layout)",
    )
    p.add_argument(
        "--expressions-from",
        type=Path,
        metavar="SOURCE",
        help="the target photos wear SOURCE's expressions: a photo's (in every output) or a "
        "video's (animation.glb + blendshapes.csv of the target's head)",
    )
    p.add_argument(
        "--same-person",
        action="store_true",
        help="the photos show one person: one shape and one albedo from all of them, each photo "
        "keeping its own pose, expression and light (OUT/person/ + OUT/<photo>/)",
    )
    p.add_argument("--formats", default="obj,ply,glb", help="mesh formats to write")
    p.set_defaults(func=_run_reconstruct)


def _run_reconstruct(args) -> int:
    import torch

    from engine.reconstruct.batch import reconstruct_paths

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    options = dict(
        method=args.method,
        weights=args.weights,
        device=args.device,
        detector=args.detector,
        detail=not args.no_detail,
    )
    if args.same_person:
        from engine.reconstruct.same_person import same_person_paths

        return same_person_paths(args.inputs, args.out, formats, **options)
    if args.expressions_from is not None:
        from engine.reconstruct.transfer import transfer_paths

        return transfer_paths(args.inputs, args.expressions_from, args.out, formats, **options)
    return reconstruct_paths(
        args.inputs,
        args.out,
        method=args.method,
        weights=args.weights,
        device=args.device,
        detector=args.detector,
        all_faces=args.all_faces,
        meshes=args.meshes,
        preview=args.preview_video,
        formats=formats,
        detail=not args.no_detail,
        animation=args.animation,
    )


# Sub-commands whose arguments their own module parses.
DELEGATED = {
    "train": ("engine.train", "train CEST from videos/images (YAML config)"),
    "finetune": ("engine.finetune", "adapt a model to one person's video"),
    "eval": ("engine.evaluate", "accuracy on synthetic faces or annotated photos"),
    "bench": ("engine.bench", "speed figures on this machine"),
}


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    return int(importlib.import_module(module).main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cest", description="CEST Studio: 3D faces from photos and videos")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_reconstruct(sub)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_text} (see cest {name} --help)", add_help=False)
    return parser


class _BarSafeHandler(logging.StreamHandler):
    """Log lines through tqdm.write, so that they never land in the middle of a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    handler = _BarSafeHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        if argv and argv[0] in DELEGATED:
            return _delegate(DELEGATED[argv[0]][0], argv[1:])
        args = build_parser().parse_args(argv)
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        return args.func(args)
    except CestError as exc:
        from tqdm import tqdm

        tqdm.write(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
