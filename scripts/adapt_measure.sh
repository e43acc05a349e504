#!/usr/bin/env bash
# The measurement of docs/ADAPT.md: the shipped default model adapted with `wavtok adapt` to music played by GM
# instruments its training data never uses (python/data/drift_music.py), with figures on that audio, on held-out
# songs of the same kind and on held-out speech (in-domain: how the adapted model decodes old speech tokens).
#   bash scripts/adapt_measure.sh [OUT_DIR [ADAPT OPTIONS]]    (default out/adapt; needs fluidsynth, fluid-soundfont-gm, espeak-ng)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/adapt}
shift || true  # the rest goes to wavtok adapt (e.g. --radius 0.5)
PY=/usr/bin/python3
mkdir -p "$OUT"
[ -x build/wavtok ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
# 16 minutes of adaptation music, 16 held-out songs (other seeds: other songs, other instrument combinations).
[ -d "$OUT/music_adapt" ] || $PY python/data/drift_music.py --out "$OUT/music_adapt" --clips 96 --seconds 10 --seed 1 2>/dev/null
[ -d "$OUT/music_eval" ] || $PY python/data/drift_music.py --out "$OUT/music_eval" --clips 16 --seconds 10 --seed 2 2>/dev/null
# Held-out speech: espeak-ng sentences in a few languages and voices, 24 kHz.
if [ ! -d "$OUT/speech_eval" ]; then
  mkdir -p "$OUT/speech_eval.tmp"
  i=0
  while IFS='|' read -r voice text; do
    espeak-ng -v "$voice" -w "$OUT/speech_eval.tmp/raw.wav" "$text"
    sox "$OUT/speech_eval.tmp/raw.wav" -r 24000 -b 16 "$OUT/speech_eval.tmp/speech_$i.wav" norm -3
    rm "$OUT/speech_eval.tmp/raw.wav"
    i=$((i + 1))
  done <<'EOF'
en-us|The quick brown fox jumps over the lazy dog while the children watch from the window.
en-gb+f3|Please call Stella and ask her to bring these things with her from the store.
de+m3|Der Wind weht heute kalt über die Felder, und die Vögel fliegen tief.
fr+f2|Le petit chat dort au soleil pendant que la pluie tombe sur la ville.
es+m5|Mañana vamos a caminar por la playa y mirar las olas del mar.
it+f4|La biblioteca apre alle nove e chiude alle sei di sera.
nl+m2|De trein naar Amsterdam vertrekt over tien minuten van spoor vier.
pl+f1|Wczoraj wieczorem padał deszcz, a dzisiaj świeci piękne słońce.
EOF
  mv "$OUT/speech_eval.tmp" "$OUT/speech_eval"
fi
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD), $(nproc --all) cores"
  /usr/bin/time -f "# wall %e s, user %U s, peak RSS %M KiB" \
    build/wavtok adapt --audio "$OUT/music_adapt" --eval "$OUT/music_eval" --eval "$OUT/speech_eval" \
    -o "$OUT/adapted.wtk" -t 1 -q "$@" 2>&1
} | tee "$OUT/report.txt"
