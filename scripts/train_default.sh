#!/bin/sh
# Generate the training data (if missing) and train the default wavtok model on CPU.
# Resumes automatically from $RUN/last.ckpt (train.py refuses a checkpoint written with another recipe).
# See models/TRAINING.md. runs/default holds the first recipe's run (step 1860); the current recipe trains in runs/v2.
#   scripts/train_default.sh [extra train.py args, e.g. --max-minutes 60]
# Environment: MINUTES (training audio, default 90), RUN (default runs/v2), NICE (default 5)
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
MINUTES=${MINUTES:-90}
RUN=${RUN:-runs/v2}
NICE=${NICE:-5}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

nice -n "$NICE" $PY models/data/make_dataset.py --out data --minutes "$MINUTES"
mkdir -p "$RUN"
exec nice -n "$NICE" $PY models/train.py --config models/train_config.yaml --run "$RUN" "$@"
