"""Jitter on a still segment and lag on a fast one, of the animation curves before and after the
One Euro filter (engine/reconstruct/motion.py), from a reconstructed video's frames.jsonl.

    python scripts/motion_smoothing.py OUT/VIDEO/frames.jsonl [--window 2.0]

Jitter: RMS of the frame-to-frame change of the expression weights (mean over the 53) in the
stillest window (least low-passed motion). Lag: the time shift that best aligns the smoothed curve
with the raw one in the fastest window (largest low-passed motion), found by cross-correlation.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from engine.reconstruct import motion as mo
from engine.reconstruct.animation import read_records


def _windows(values: np.ndarray, n: int) -> np.ndarray:
    """Low-passed motion per start frame: mean |change| of a 5-frame moving average over n frames."""
    kernel = np.ones(5) / 5
    smooth = np.stack([np.convolve(v, kernel, mode="same") for v in values.T], 1)
    speed = np.abs(np.diff(smooth, axis=0)).mean(1)
    return np.convolve(speed, np.ones(n), mode="valid")


def _lag_ms(raw: np.ndarray, smoothed: np.ndarray, fps: float, most: int = 10) -> float:
    raw, smoothed = raw - raw.mean(0), smoothed - smoothed.mean(0)
    scores = [(np.sum(raw[: len(raw) - k] * smoothed[k:]), k) for k in range(most + 1)]
    return max(scores)[1] / fps * 1000


def report(records: list[dict], fps: float, window_s: float = 2.0) -> dict:
    faces = [r for r in records if r.get("face")]
    n_exp = len(faces[0]["expression"])
    raw = mo.motion_from_records(records, fps, (1, 1), n_exp)
    smoothed = mo.smooth(raw)
    seen = raw.face
    r, s = raw.expression[seen], smoothed.expression[seen]
    n = int(round(window_s * fps))
    motion = _windows(r, n)
    still, fast = int(np.argmin(motion)), int(np.argmax(motion))
    jitter = lambda x: float(np.sqrt((np.diff(x, axis=0) ** 2).mean()))  # noqa: E731
    rot_r, rot_s = np.degrees(raw.rotation[seen]), np.degrees(smoothed.rotation[seen])
    return {
        "frames_with_face": int(seen.sum()),
        "fps": fps,
        "window_s": window_s,
        "still_window_start_s": round(still / fps, 2),
        "fast_window_start_s": round(fast / fps, 2),
        "jitter_raw": round(jitter(r[still : still + n]), 5),
        "jitter_smoothed": round(jitter(s[still : still + n]), 5),
        "rotation_jitter_raw_deg": round(jitter(rot_r[still : still + n]), 4),
        "rotation_jitter_smoothed_deg": round(jitter(rot_s[still : still + n]), 4),
        "lag_fast_ms": _lag_ms(r[fast : fast + n], s[fast : fast + n], fps),
        "lag_still_ms": _lag_ms(r[still : still + n], s[still : still + n], fps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frames_jsonl")
    parser.add_argument("--fps", type=float, default=None, help="default: from the records' timestamps")
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    records = read_records(args.frames_jsonl)
    times = [r["time_s"] for r in records if "time_s" in r]
    fps = args.fps or (len(times) - 1) / (times[-1] - times[0])
    print(json.dumps(report(records, fps, args.window), indent=2))


if __name__ == "__main__":
    main()
