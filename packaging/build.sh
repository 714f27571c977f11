#!/usr/bin/env bash
# Build CEST Studio as a one-folder PyInstaller bundle, then run its self-test.
#
#   bash packaging/build.sh [DIST_DIR]        # default DIST_DIR: dist/  ->  DIST_DIR/cest-studio/
#
# Environment:
#   CEST_VENV=PATH        the virtual environment to build from (default: .venv; created with
#                         scripts/setup.sh when missing)
#   CEST_BUILD_WORK=PATH  PyInstaller's work folder (default: a temporary folder, removed after)
#   CEST_SKIP_SELFTEST=1  do not run the bundle's --selftest after building
#
# The bundle is DIST_DIR/cest-studio/: run DIST_DIR/cest-studio/cest-studio (the app),
# ... --selftest (a headless check), and packaging/install-desktop.sh DIST_DIR/cest-studio to add it
# to the desktop menu.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${1:-$ROOT/dist}"
mkdir -p "$DIST"
DIST="$(cd "$DIST" && pwd)"
VENV="${CEST_VENV:-$ROOT/.venv}"
PYINSTALLER_VERSION="${CEST_PYINSTALLER_VERSION:->=6.10,<7}"

if [[ ! -x "$VENV/bin/python" ]]; then
    if [[ "$VENV" != "$ROOT/.venv" ]]; then
        echo "error: no virtual environment at $VENV" >&2
        exit 1
    fi
    echo "== no virtual environment at $VENV: creating it (scripts/setup.sh)"
    bash "$ROOT/scripts/setup.sh"
fi
PY="$VENV/bin/python"

echo "== checking the environment"
"$PY" - <<'EOF'
import importlib.util, sys
import torch
missing = [m for m in ("PySide6", "pyvista", "pyvistaqt", "vtkmodules", "engine", "cest_studio")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing in the venv: {', '.join(missing)} (pip install -e '.[app]')")
print(f"python {sys.version.split()[0]}, torch {torch.__version__} "
      f"({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU'})")
EOF

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "== installing PyInstaller"
    "$PY" -m pip install --quiet "pyinstaller$PYINSTALLER_VERSION"
fi
"$PY" -m PyInstaller --version

if [[ -f "$ROOT/resources/weights/cest_default.safetensors" ]]; then
    echo "== shipping the CEST weights (resources/weights/cest_default.safetensors)"
else
    echo "== no resources/weights/cest_default.safetensors: the bundle reconstructs with the landmark fit"
fi

WORK="${CEST_BUILD_WORK:-}"
CLEAN_WORK=0
if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/cest-pyinstaller-XXXXXX")"
    CLEAN_WORK=1
fi
mkdir -p "$WORK"
trap '[[ $CLEAN_WORK == 1 ]] && rm -rf "$WORK"' EXIT

echo "== building into $DIST/cest-studio (work folder $WORK)"
start=$(date +%s)
# Run from the work folder so that nothing (no __pycache__, no build/) lands in the checkout.
(cd "$WORK" && PYTHONDONTWRITEBYTECODE=1 "$PY" -m PyInstaller "$ROOT/packaging/cest_studio.spec" \
    --distpath "$DIST" --workpath "$WORK/build" --noconfirm --log-level WARN)
echo "== built in $(( $(date +%s) - start )) s"

BUNDLE="$DIST/cest-studio"
INTERNAL="$BUNDLE/_internal"

# Strip the symbol tables of torch's and VTK's libraries (-35% for libtorch_cpu: 415 -> 330 MB; the
# dynamic symbols stay). Only those: the wheels repaired by auditwheel (*.libs/) must not be stripped.
if [[ "${CEST_BUNDLE_STRIP:-1}" == 1 ]] && command -v strip >/dev/null; then
    before=$(du -sm "$BUNDLE" | cut -f1)
    find "$INTERNAL/torch/lib" "$INTERNAL/vtkmodules" -maxdepth 1 -type f -name '*.so*' \
        -exec strip --strip-unneeded {} +
    echo "== stripped torch and VTK libraries: ${before} MB -> $(du -sm "$BUNDLE" | cut -f1) MB"
fi

# Every library must find the libraries it links to (in the bundle or the base system).
missing="$(cd "$INTERNAL" && find . -type f -name '*.so*' | while read -r lib; do
    LD_LIBRARY_PATH="$INTERNAL" ldd "$lib" 2>/dev/null | awk -v f="$lib" '/not found/ {print f ": " $1}'
done)"
if [[ -n "$missing" ]]; then
    echo "warning: libraries not found by some bundled binaries:" >&2
    echo "$missing" >&2
fi
if find "$BUNDLE" \( -name 'libcu*' -o -name 'libnv*' -o -name 'libcudnn*' -o -name 'libnccl*' \) | grep -q .; then
    echo "error: CUDA libraries in the CPU bundle:" >&2
    find "$BUNDLE" \( -name 'libcu*' -o -name 'libnv*' -o -name 'libcudnn*' -o -name 'libnccl*' \) >&2
    exit 1
fi
echo "== bundle: $(du -sh "$BUNDLE" | cut -f1) in $BUNDLE"

if [[ "${CEST_SKIP_SELFTEST:-0}" != 1 ]]; then
    echo "== self-test (no Python from the venv: an empty environment but for HOME and TMPDIR)"
    env -i HOME="${HOME:-/tmp}" TMPDIR="${TMPDIR:-/tmp}" PATH=/usr/bin:/bin "$BUNDLE/cest-studio" --selftest
fi
