"""CEST engine: headless 3D face reconstruction (never imports Qt)."""

import os

# OpenMP threads that spin while waiting steal the only other core from the app's GUI thread or
# a second process on a 2-core machine (measured: 2-thread renders went from ~4 ms to 100-300 ms
# under load). Passive waiting keeps them polite. Set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
