#!/usr/bin/env bash
# Set up (first run only), then run the whole test suite. GUI tests get a virtual X screen from
# pytest-xvfb (Debian: apt-get install xvfb xauth libxcb-icccm4 libxcb-keysyms1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
