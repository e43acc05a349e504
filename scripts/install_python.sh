#!/usr/bin/env bash
# Installs the Python package `wavtok` for Debian's /usr/bin/python3 (or $PYTHON): `pip install .`, offline. The
# in-tree build backend (pyproject.toml) builds the extension with CMake in ./build (already built by
# scripts/build.sh, so this only packs it). Debian marks its Python as externally managed (PEP 668), so pip is told
# to install anyway (--break-system-packages): as root into /usr/local/lib/python3*/dist-packages, which Debian's
# packages never touch; otherwise into the user's site-packages (--user).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
args=(install --no-index --disable-pip-version-check --no-warn-script-location --break-system-packages)
if [ "$(id -u)" -eq 0 ]; then args+=(--root-user-action=ignore); else args+=(--user); fi
"$PY" -m pip "${args[@]}" .
# From another folder, so that the source tree is not what gets imported.
(cd / && "$PY" -c "import wavtok; m = wavtok.Model(); print('python: import wavtok works (wavtok', wavtok.__version__ + ',', m.sample_rate, 'Hz default model)')")
