"""Reconstruct every frame of a video in a child process of the app (no Qt here).

    python -m cest_studio.video_job VIDEO OUT_DIR [--method fit|cest] [--weights W] [--device cpu]

Why a child process: in the app's process, a reconstruction thread and the GUI thread share one
interpreter lock; on a busy 2-core machine the GUI then waited 50-100 ms at a time. Here the GUI
only reads this process's messages. A crash here cannot take the window down either.

It runs engine.reconstruct.video.reconstruct_video (frames.jsonl, reconstruction.mp4, face.obj in OUT_DIR)
and saves each frame's reconstruction as OUT_DIR/frames/frame_NNNNNN.npz for the app to scrub.
Messages go to stdout, one JSON object per line after the ``@cest`` prefix:
``{"info": {...}}``, ``{"frame": i}``, ``{"progress": [done, total]}``, ``{"done": summary}``,
``{"error": message}``. A line ``stop`` on stdin ends the run after the current frame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

PREFIX = "@cest "


def frame_path(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / "frames" / f"frame_{index:06d}.npz"


def _emit(**message) -> None:
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def parse_message(line: str) -> dict | None:
    """A protocol line -> its message; None for any other output."""
    start = line.rfind(PREFIX)  # after any progress-bar text on the same line
    if start < 0:
        return None
    try:
        message = json.loads(line[start + len(PREFIX) :].strip())
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _watch_stdin(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()  # "stop", or the app closed our stdin (it quit)


def run(
    video: str,
    out_dir: str,
    method: str = "auto",
    weights: str | None = None,
    device: str = "cpu",
    detector: str = "auto",
    threads: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    from cest_studio.tasks import user_message

    stop = stop or threading.Event()
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from engine.io.video import probe
        from engine.reconstruct.reconstructor import Reconstructor
        from engine.reconstruct.sequence import FrameRecorder
        from engine.reconstruct.video import reconstruct_video

        info = probe(video)
        upright = info.rotation % 180 == 0  # the frames are turned upright before anything sees them
        _emit(
            info={
                "fps": info.fps,
                "frames": info.frames,
                "width": info.width if upright else info.height,
                "height": info.height if upright else info.width,
            }
        )
        reconstructor = Reconstructor(method=method, weights=weights, device=device, detector=detector)
        recorder = FrameRecorder(max_frames=10**9)

        def on_frame(index: int, recon) -> None:
            frame = recorder.record(index, recon)
            if frame is not None:
                frame.save(frame_path(out_dir, frame.index))
                recorder.frames.pop(frame.index, None)  # on disk now; keep this process small
                _emit(frame=frame.index)

        def progress(done: int, total: int) -> None:
            _emit(progress=[done, total])

        summary = reconstruct_video(
            reconstructor,
            video,
            out_dir,
            meshes=False,
            progress=progress,
            stop=stop.is_set,
            on_frame=on_frame,
            preview=True,
        )
    except BaseException as exc:  # noqa: BLE001 - the app shows one line, never a traceback
        if isinstance(exc, KeyboardInterrupt):
            _emit(error="video reconstruction interrupted")
            return 130
        _emit(error=user_message(exc))
        return 1
    summary["out_dir"] = str(out_dir)
    summary["video_fps"] = info.fps
    _emit(done=summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cest_studio.video_job", description=__doc__.split("\n")[0]
    )
    parser.add_argument("video")
    parser.add_argument("out_dir")
    parser.add_argument("--method", default="auto")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    if hasattr(os, "nice"):
        os.nice(5)  # background work: the window's process comes first on a busy machine
    return run(
        args.video, args.out_dir, args.method, args.weights, args.device, args.detector, args.threads, stop
    )


if __name__ == "__main__":
    sys.exit(main())
