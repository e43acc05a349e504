#!/bin/bash
# Regenerates the results table of docs/PTQ.md: quantizes the default model with every configs/quant/*.yaml,
# measures quality on data/eval and speed at the released dims (1 thread). Options go to python/ptq_report.py
# (e.g. --bin build-ptq/wavtok --max-eval 10).
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 python/ptq_report.py "$@"
