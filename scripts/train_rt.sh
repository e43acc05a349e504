#!/bin/sh
# Train the causal 'rt' model (python/train_config_rt.yaml; docs/STREAMING.md "Causal models") on CPU, resumably:
# generates the training data if missing (the default model's, python/data/make_dataset.py), initialises from the
# shipped default model where shapes match (--init-wtk; the iSTFT head is resampled to n_fft 640), then trains in
# runs/rt, resuming from runs/rt/last.ckpt when it exists. Exports go to runs/rt/export (model.ckpt + config.yaml);
# ship one with
#   build/wavtok convert runs/rt/export/model.ckpt -o codec/rt/wavtok-rt.wtk
# (embedded into the binary at the next build; `-m rt` selects it). See python/TRAINING.md.
#   scripts/train_rt.sh [extra train.py args, e.g. --max-minutes 60 or --max-steps 30000]
# Environment: MINUTES (training audio, default 90), INIT_WTK (default codec/default/wavtok-default.wtk),
#              INIT_STEP (the step the init model was exported at, for the lr schedule; default 18570, the v5 model),
#              RUN (default runs/rt), NICE (default 5)
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
MINUTES=${MINUTES:-90}
HUMAN_MINUTES=${HUMAN_MINUTES:-30}
INIT_WTK=${INIT_WTK:-codec/default/wavtok-default.wtk}
INIT_STEP=${INIT_STEP:-18570}
RUN=${RUN:-runs/rt}
NICE=${NICE:-5}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

if [ ! -f data/train/filelist ] || [ ! -f data/train_human/filelist ]; then
  nice -n "$NICE" $PY python/data/make_dataset.py --out data --minutes "$MINUTES" --human-minutes "$HUMAN_MINUTES"
fi
mkdir -p "$RUN"
if [ -f "$RUN/last.ckpt" ]; then
  exec nice -n "$NICE" $PY python/train.py --config python/train_config_rt.yaml --run "$RUN" --resume "$@"
fi
exec nice -n "$NICE" $PY python/train.py --config python/train_config_rt.yaml --run "$RUN" \
  --init-wtk "$INIT_WTK" --init-step "$INIT_STEP" "$@"
