"""`cest bench`: the speed figures we steer by, on the current device.

Every figure is a median over repeats after warm-up. The last line printed is one JSON object
with every figure, for scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from engine.resources import resources_root

APP_PREVIEW_SIZE = 512  # the app's 2D re-render


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@contextmanager
def module_timer(modules: dict[str, torch.nn.Module], device: torch.device):
    """Collect per-call wall times (ms) of named submodules through forward hooks."""
    times: dict[str, list[float]] = {name: [] for name in modules}
    handles = []
    for name, module in modules.items():

        def pre(_m, _i, name=name):
            _sync(device)
            times[name].append(-time.perf_counter())

        def post(_m, _i, _o, name=name):
            _sync(device)
            times[name][-1] += time.perf_counter()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield times
    finally:
        for h in handles:
            h.remove()


def bench_detection(image: np.ndarray, repeats: int) -> dict:
    from engine.detect import create_detector

    detector = create_detector("auto")
    ms = timed(lambda: detector.detect(image), torch.device("cpu"), repeats)
    result = {"detector": detector.name, "detect_ms": ms}
    refiner = getattr(detector, "_refiner", None)
    face = detector.detect(image)
    if refiner is not None and face and face[0].mesh is not None:  # its share: the 468 -> 68 refinement
        mesh = face[0].mesh
        result["landmark_refine_ms"] = timed(lambda: refiner(image, mesh), torch.device("cpu"), repeats)
    return result


def bench_reconstruction(recon_method: str, image: np.ndarray, device: torch.device, repeats: int) -> dict:
    """End-to-end per face, detection excluded: crop -> FaceParams (+ each estimator's share)."""
    from engine.crop import crop_image, crop_params_from_landmarks, image_to_crop
    from engine.reconstruct.reconstructor import Reconstructor, image_tensor

    rec = Reconstructor(method=recon_method, device=str(device))
    face = rec.detector.detect(image)[0]
    box = crop_params_from_landmarks(face.landmarks)
    crop = image_tensor(crop_image(image, box, 256))
    lm = torch.as_tensor(image_to_crop(face.landmarks, box, 256), dtype=torch.float32)[None]
    result = {f"{recon_method}_end_to_end_ms": timed(lambda: rec.estimate(crop, lm), device, repeats)}
    result[f"{recon_method}_faces_per_s"] = 1000 / result[f"{recon_method}_end_to_end_ms"]
    if rec.network is not None:
        net = rec.network
        parts = {n: getattr(net, n) for n in ("viewpoint", "shape", "reflectance", "illumination")}
        with module_timer(parts, device) as times:
            for _ in range(repeats):
                rec.estimate(crop, lm)
        for name, samples in times.items():
            result[f"estimator_{name}_ms"] = statistics.median(samples[2:] or samples) * 1000
    return result


def bench_render(device: torch.device, repeats: int) -> dict:
    from engine.facemodel import FaceModel
    from engine.lighting import LightSettings, settings_to_sh
    from engine.params import FaceParams
    from engine.render import Renderer

    model = FaceModel.load(device=device)
    renderer = Renderer(model.faces, model.uvs).to(device)
    params = FaceParams(
        torch.tensor([[0.1, 0.3, 0.0]]),
        torch.zeros(1, 2),
        torch.full((1, 1), 0.075),
        torch.zeros(1, model.n_identity),
        torch.zeros(1, model.n_expression),
        torch.full((1, 3, 64, 64), 0.6),
        settings_to_sh(LightSettings(30, 20)),
    ).to(device)
    out = {}
    for size in (128, 256):

        def forward(size=size):
            _, cam, ndc = params.geometry(model)
            return renderer.render(cam, ndc, params.albedo, params.light, size)

        out[f"render_{size}_ms"] = timed(forward, device, repeats)

    albedo = params.albedo.clone().requires_grad_(True)
    verts = model.mean[None].clone().requires_grad_(True)

    def forward_backward():
        from engine.camera import project, to_camera

        cam = to_camera(verts, params.rotation)
        ndc = project(cam, params.scale, params.translation)
        renderer.render(cam, ndc, albedo, params.light, 128).image.mean().backward()

    out["render_128_fwd_bwd_ms"] = timed(forward_backward, device, repeats)

    _, cam, ndc = params.geometry(model)
    cache = renderer.render(cam, ndc, params.albedo, params.light, APP_PREVIEW_SIZE)
    light = settings_to_sh(LightSettings(-40, 10)).to(device)
    out[f"relight_{APP_PREVIEW_SIZE}_ms"] = timed(
        lambda: renderer.shade(cache, params.albedo, light), device, repeats
    )
    return out


def bench_video(path: Path, device: torch.device, max_frames: int) -> dict:
    """Frames/s of `cest reconstruct VIDEO` at its defaults, end to end (decode, detect or track,
    reconstruct, write), then of the same clip as a live source (engine.reconstruct.live) played at
    twice its frame rate, so that the source is never what limits it. The models are loaded first
    (once per run, not per frame), and the stop at ``max_frames`` is not reported as a warning."""
    from engine.reconstruct.live import LiveSession, LiveSource
    from engine.reconstruct.reconstructor import Reconstructor
    from engine.reconstruct.video import reconstruct_video

    rec = Reconstructor(device=str(device))
    rec.detector  # noqa: B018 - loaded before the clock starts, as the live session does
    done = [0]

    def progress(index: int, _total: int) -> None:
        done[0] = index

    quiet = logging.getLogger("cest")
    with tempfile.TemporaryDirectory() as out:
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            stats = reconstruct_video(rec, path, out, progress=progress, stop=lambda: done[0] >= max_frames)
        finally:
            quiet.setLevel(level)
    result = {"video_fps": stats["fps"], "video_frames": stats["frames"], "video_method": rec.method}
    with LiveSource.open(path, speed=2.0) as live:
        session = LiveSession(rec, source=str(path))
        figures = session.run(live, stop=lambda: session.frames >= max_frames)
    result.update(
        live_fps=figures["fps"],
        live_frames=figures["frames"],
        live_dropped=figures["dropped"],
        live_source_fps=round(2.0 * _clip_fps(path), 2),
    )
    return result


def _clip_fps(path: Path) -> float:
    from engine.io.video import probe

    return probe(path).fps


def compute_bound(figures: dict) -> dict:
    """The video's compute bound, 1000 / (detect_ms + cest_end_to_end_ms): a frame detected and
    reconstructed one after another, nothing else; and video_fps and live_fps as ratios of it."""
    reconstruct = figures.get("cest_end_to_end_ms") or figures.get("fit_end_to_end_ms")
    if not reconstruct or "detect_ms" not in figures:
        return {}
    bound = 1000 / (figures["detect_ms"] + reconstruct)
    out = {"video_bound_fps": bound}
    for key in ("video_fps", "live_fps"):
        if key in figures:
            out[f"{key}_to_bound"] = figures[key] / bound
    return out


def bench_training(config_path: Path, device: torch.device, steps: int) -> dict:
    from engine.training.trainer import Trainer, load_config

    config = load_config(config_path, {"device": str(device), "data": {"videos": []}})
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out)
        batch_images = config.data.clips_per_batch * config.data.frames_per_clip
        trainer.train_step(0)
        _sync(device)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            trainer.train_step(step)
        _sync(device)
        elapsed = time.perf_counter() - start
    return {
        "train_images_per_s": batch_images * steps / elapsed,
        "train_batch": batch_images,
        "train_size": config.model.image_size,
    }


def peak_memory(device: torch.device) -> dict:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import RECONSTRUCT_THREADS

    parser = argparse.ArgumentParser(prog="cest bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--video", type=Path, help="clip for the video figure (default: ../shared sample)")
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--train-config", type=Path, default=Path("configs/default.yaml"))
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma list of: detect,reconstruct,render,video,train")
    parser.add_argument(
        "--threads",
        type=int,
        default=RECONSTRUCT_THREADS,
        help=f"torch threads (default {RECONSTRUCT_THREADS}, what cest reconstruct uses; 0 = torch's choice)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device, skip = torch.device(args.device), set(args.skip.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    from engine.io.image import load_image

    image = load_image(resources_root() / "samples" / "astronaut.png")
    figures: dict = {"device": machine()}
    steps = [
        ("detect", lambda: bench_detection(image, args.repeats)),
        (
            "reconstruct",
            lambda: {
                **bench_reconstruction("fit", image, device, args.repeats),
                **_cest_or_empty(image, device, args.repeats),
            },
        ),
        ("render", lambda: bench_render(device, args.repeats)),
        ("video", lambda: _video_or_empty(args, device)),
        (
            "train",
            lambda: (
                bench_training(args.train_config, device, args.train_steps)
                if args.train_config.exists()
                else {}
            ),
        ),
    ]
    for name, run in steps:
        if name in skip:
            continue
        result = run()
        figures.update(result)
        for key, value in result.items():
            print(f"{key:32s} {value:10.2f}" if isinstance(value, float) else f"{key:32s} {value}")
    bound = compute_bound(figures)
    for key, value in bound.items():
        print(f"{key:32s} {value:10.2f}")
    figures.update(bound)
    figures.update(peak_memory(device))
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


def _cest_or_empty(image, device, repeats) -> dict:
    from engine.reconstruct.reconstructor import default_weights

    return bench_reconstruction("cest", image, device, repeats) if default_weights() else {}


def _video_or_empty(args, device) -> dict:
    """On the given clip, else the shared sample clip, else a clip made by panning the sample photo."""
    path = (
        args.video
        or Path(__file__).resolve().parent.parent.parent / "shared/data/faces/video_expressions.mp4"
    )
    if path.exists():
        return bench_video(path, device, args.video_frames)
    with tempfile.TemporaryDirectory() as tmp:
        clip = _panning_clip(Path(tmp) / "pan.mp4", args.video_frames)
        return {**bench_video(clip, device, args.video_frames), "video_clip": "panned sample photo"}


def _panning_clip(path: Path, frames: int) -> Path:
    from engine.io.image import load_image
    from engine.io.video import VideoWriter

    image = load_image(resources_root() / "samples" / "astronaut.png")
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            dx = int(20 * np.sin(i / 8))
            writer.write(np.roll(image, dx, axis=1))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
