"""Where the files that ship with the app live (resources/), in a checkout, a wheel or a bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_root() -> Path:
    """The resources folder: $CEST_RESOURCES, a PyInstaller bundle's, or the repository's."""
    if env := os.environ.get("CEST_RESOURCES"):
        return Path(env)
    if bundle := getattr(sys, "_MEIPASS", None):
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(relative: str) -> Path:
    path = resources_root() / relative
    if not path.exists():
        raise FileNotFoundError(f"missing resource {relative!r} (looked in {resources_root()})")
    return path
