"""Where prepared training data (video crops, synthetic banks) is kept between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | None = None) -> Path:
    """The config's folder, else $CEST_CACHE, else ~/.cache/cest-studio."""
    return Path(cache_dir or os.environ.get("CEST_CACHE") or Path.home() / ".cache" / "cest-studio")
