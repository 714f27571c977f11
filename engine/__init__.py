"""CEST engine: headless 3D face reconstruction (never imports Qt)."""

__version__ = "0.1.0"
