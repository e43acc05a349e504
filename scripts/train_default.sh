#!/bin/sh
# Generate the training data (if missing) and train the default wavtok model on CPU, in five stages:
#   1. recipe v2 (python/train_config.yaml) in runs/v2 up to step 2751;
#   2. recipe v3 (python/train_config_v3.yaml: v2 + the band-envelope loss) in runs/v3, branched from stage 1, up to
#      step 4799;
#   3. recipe v4 (python/train_config_v4.yaml: v3 with the encoder trainable, commitment weight 10) in runs/v4,
#      branched from stage 2, up to step 10487;
#   4. recipe v5 (python/train_config_v5.yaml: the streamable backbone, decoder-only fine-tuning) in runs/v5,
#      branched from stage 3, up to step 18570;
#   5. recipe v6 (python/train_config_v6.yaml: v5 fine-tuned on data with recorded human voices, encoder trainable)
#      in runs/v6, branched from stage 4, up to step 21069;
#   6. recipe v7 (python/train_config_v7.yaml: a 4096-code codebook k-means-fitted on v6's latents, + the split
#      train_human2) in runs/v7, initialised from stage 5's export (converted to runs/v6/v6.wtk by build/wavtok).
# Each stage resumes automatically from its last.ckpt (train.py refuses a checkpoint written with another recipe).
# The data step resumes too (make_dataset.py continues after the last clip it wrote).
# See python/TRAINING.md.
#   scripts/train_default.sh [extra train.py args for stage 6, e.g. --max-minutes 60]
# Environment: MINUTES (espeak-ng/music/noise training audio, default 90), HUMAN_MINUTES (human-voice training
#              audio, default 30), STAGE1_STEPS (default 2751), STAGE2_STEPS (default 4799), STAGE3_STEPS (default
#              10487), STAGE4_STEPS (default 18570), STAGE5_STEPS (default 21069), NICE (default 5)
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
MINUTES=${MINUTES:-90}
HUMAN_MINUTES=${HUMAN_MINUTES:-30}
STAGE1_STEPS=${STAGE1_STEPS:-2751}
STAGE2_STEPS=${STAGE2_STEPS:-4799}
STAGE3_STEPS=${STAGE3_STEPS:-10487}
STAGE4_STEPS=${STAGE4_STEPS:-18570}
STAGE5_STEPS=${STAGE5_STEPS:-21069}
NICE=${NICE:-5}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

nice -n "$NICE" $PY python/data/make_dataset.py --out data --minutes "$MINUTES" --human-minutes "$HUMAN_MINUTES"
nice -n "$NICE" $PY python/data/make_dataset.py --out data --splits train_human2
mkdir -p runs/v2 runs/v3 runs/v4 runs/v5 runs/v6 runs/v7
if [ -f runs/v7/last.ckpt ]; then
  exec nice -n "$NICE" $PY python/train.py --config python/train_config_v7.yaml --run runs/v7 --resume "$@"
fi
if [ ! -f runs/v6/last.ckpt ]; then
  if [ ! -f runs/v5/last.ckpt ]; then
    if [ ! -f runs/v4/last.ckpt ]; then
      if [ ! -f runs/v3/last.ckpt ]; then
        nice -n "$NICE" $PY python/train.py --config python/train_config.yaml --run runs/v2 --max-steps "$STAGE1_STEPS"
      fi
      nice -n "$NICE" $PY python/train.py --config python/train_config_v3.yaml --run runs/v3 \
        --branch-from runs/v2/last.ckpt --max-steps "$STAGE2_STEPS"
    fi
    nice -n "$NICE" $PY python/train.py --config python/train_config_v4.yaml --run runs/v4 \
      --branch-from runs/v3/last.ckpt --max-steps "$STAGE3_STEPS"
  fi
  nice -n "$NICE" $PY python/train.py --config python/train_config_v5.yaml --run runs/v5 \
    --branch-from runs/v4/last.ckpt --max-steps "$STAGE4_STEPS"
fi
if [ -f runs/v6/last.ckpt ]; then
  nice -n "$NICE" $PY python/train.py --config python/train_config_v6.yaml --run runs/v6 --resume --max-steps "$STAGE5_STEPS"
else
  nice -n "$NICE" $PY python/train.py --config python/train_config_v6.yaml --run runs/v6 \
    --branch-from runs/v5/last.ckpt --max-steps "$STAGE5_STEPS"
fi
# v7 changes the codebook size, so it starts from v6's exported weights (train.py --init-wtk refits the codebook)
[ -x build/wavtok ] || bash scripts/build.sh
build/wavtok convert runs/v6/export/model.ckpt --config runs/v6/export/config.yaml -o runs/v6/v6.wtk
exec nice -n "$NICE" $PY python/train.py --config python/train_config_v7.yaml --run runs/v7 \
  --init-wtk runs/v6/v6.wtk --init-step "$STAGE5_STEPS" "$@"
