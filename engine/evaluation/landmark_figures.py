"""The standard 300-W figures from per-face NMEs: mean, inner-51 mean, failure rate and AUC at 8%."""

from __future__ import annotations

import numpy as np

FAILURE_THRESHOLD = 0.08
INNER = slice(17, 68)  # the 51 points without the jaw contour


def point_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(68,) point errors / the outer-eye-corner distance (points 36 and 45, 0-based)."""
    iod = float(np.linalg.norm(truth[36] - truth[45]))
    return np.linalg.norm(np.asarray(pred) - truth, axis=1) / max(iod, 1e-12)


def auc(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD, steps: int = 1000) -> float:
    """Area under the cumulative error curve up to threshold, normalised to [0, 1]."""
    if len(nme) == 0:
        return float("nan")
    x = np.linspace(0, threshold, steps + 1)
    ced = (np.sort(nme)[None, :] <= x[:, None]).mean(1)
    return float(np.trapezoid(ced, x) / threshold)


def figures(nme: np.ndarray, nme_inner: np.ndarray) -> dict:
    """Percentages (and the AUC as a fraction) over the faces that were found."""
    if len(nme) == 0:
        return {"n": 0, "nme": None, "nme_inner51": None, "failure_rate_8": None, "auc_8": None}
    return {
        "n": len(nme),
        "nme": float(nme.mean() * 100),
        "nme_median": float(np.median(nme) * 100),
        "nme_inner51": float(nme_inner.mean() * 100),
        "failure_rate_8": float((nme > FAILURE_THRESHOLD).mean() * 100),
        "auc_8": auc(nme),
    }
