#!/usr/bin/env bash
# Set up (first run only), then reconstruct the bundled sample face into out/astronaut/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/cest reconstruct resources/samples/astronaut.png -o out "$@"
echo "results in $(pwd)/out/astronaut/ (open preview.png; face.obj opens textured in Blender/MeshLab)"
