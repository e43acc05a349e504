#!/bin/sh
# Train the causal 'rt' model (python/train_config_rt.yaml; docs/STREAMING.md "Causal models") on CPU, resumably:
# generates the training data if missing (the default model's, python/data/make_dataset.py), initialises from the
# shipped default model where shapes match (--init-wtk; the iSTFT head is resampled to n_fft 640), then trains in
# two stages, each resuming from its last.ckpt when it exists:
#   1. recipe rt (python/train_config_rt.yaml, 1024 codes) in runs/rt up to step 20931;
#   2. recipe rt7 (python/train_config_rt7.yaml: a 4096-code codebook k-means-fitted on stage 1's latents, + the
#      split train_human2) in runs/rt7, initialised from stage 1's export (converted to runs/rt/rt.wtk).
# Exports go to runs/rt7/export (model.ckpt + config.yaml); ship one with
#   build/wavtok convert runs/rt7/export/model.ckpt -o codec/rt/wavtok-rt.wtk
# (embedded into the binary at the next build; `-m rt` selects it). See python/TRAINING.md.
#   scripts/train_rt.sh [extra train.py args, e.g. --max-minutes 60 or --max-steps 30000]
# Environment: MINUTES (training audio, default 90), INIT_WTK (default codec/default/wavtok-default.wtk),
#              INIT_STEP (the step the init model was exported at, for the lr schedule; default 18570, the v5 model),
#              RT_STEPS (stage 1's length, default 20931), NICE (default 5)
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
MINUTES=${MINUTES:-90}
HUMAN_MINUTES=${HUMAN_MINUTES:-30}
INIT_WTK=${INIT_WTK:-codec/default/wavtok-default.wtk}
INIT_STEP=${INIT_STEP:-18570}
RT_STEPS=${RT_STEPS:-20931}
NICE=${NICE:-5}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

if [ ! -f data/train/filelist ] || [ ! -f data/train_human/filelist ]; then
  nice -n "$NICE" $PY python/data/make_dataset.py --out data --minutes "$MINUTES" --human-minutes "$HUMAN_MINUTES"
fi
[ -f data/train_human2/filelist ] || nice -n "$NICE" $PY python/data/make_dataset.py --out data --splits train_human2
mkdir -p runs/rt runs/rt7
if [ -f runs/rt7/last.ckpt ]; then
  exec nice -n "$NICE" $PY python/train.py --config python/train_config_rt7.yaml --run runs/rt7 --resume "$@"
fi
if [ -f runs/rt/last.ckpt ]; then
  nice -n "$NICE" $PY python/train.py --config python/train_config_rt.yaml --run runs/rt --resume --max-steps "$RT_STEPS"
else
  nice -n "$NICE" $PY python/train.py --config python/train_config_rt.yaml --run runs/rt \
    --init-wtk "$INIT_WTK" --init-step "$INIT_STEP" --max-steps "$RT_STEPS"
fi
[ -x build/wavtok ] || bash scripts/build.sh
build/wavtok convert runs/rt/export/model.ckpt --config runs/rt/export/config.yaml -o runs/rt/rt.wtk
exec nice -n "$NICE" $PY python/train.py --config python/train_config_rt7.yaml --run runs/rt7 \
  --init-wtk runs/rt/rt.wtk --init-step "$RT_STEPS" "$@"
