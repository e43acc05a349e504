#!/usr/bin/env bash
# Regenerates docs/QUALITY.md and docs/quality/*.png: the wavtok default model against codec2
# (700C, 1200, 3200) and Opus (6, 12 kbps) on the held-out eval set, with `wavtok eval` metrics.
#
#   bash scripts/quality_report.sh [quality_report.py args, e.g. --model M.wtk --clips 20]
#
# Builds build/wavtok (scripts/build.sh) if it is missing; WAVTOK=path/to/wavtok uses another
# binary. Generates data/eval/ with python/data/make_dataset.py if it is missing. Runs niced,
# one thread, one process at a time (about 3 CPU-minutes for the 40 clips).
# Needs sox, codec2, opus-tools and python3-numpy (scripts/setup.sh); python3-matplotlib for
# labelled pictures (without it a plain built-in PNG writer draws them).
set -euo pipefail
cd "$(dirname "$0")/.."
WAVTOK="${WAVTOK:-build/wavtok}"
if [ ! -x "$WAVTOK" ]; then
  echo "quality_report: $WAVTOK missing, building it"
  bash scripts/build.sh
fi
exec nice -n 5 /usr/bin/python3 python/quality_report.py --wavtok "$WAVTOK" "$@"
