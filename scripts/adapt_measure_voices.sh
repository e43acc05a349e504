#!/usr/bin/env bash
# docs/ADAPT.md "Held-out languages": the shipped default model adapted with `wavtok adapt` to recorded human voices
# of the speakers and languages its training holds out (klettres en_GB, it, ru, hu, he and a festival voice; the
# eval_human split of python/data/make_dataset.py drawn with another seed), with figures on that audio and on the
# clips of data/eval_human that share no recording with it.
#   bash scripts/adapt_measure_voices.sh [OUT_DIR [ADAPT OPTIONS]]    (default out/adapt_voices; needs data/eval_human:
#   python/data/make_dataset.py --splits eval_human)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/adapt_voices}
shift || true  # the rest goes to wavtok adapt
PY=/usr/bin/python3
[ -x build/wavtok ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
[ -f data/eval_human/manifest.tsv ] || { echo "data/eval_human missing: $PY python/data/make_dataset.py --splits eval_human" >&2; exit 1; }
mkdir -p "$OUT"
# 96 clips (about 7 minutes) of the held-out speakers, another draw than data/eval_human's.
[ -d "$OUT/voices_adapt/eval_human" ] ||
  $PY python/data/make_dataset.py --splits eval_human --human-eval-clips 96 --seed 777 --out "$OUT/voices_adapt" >/dev/null
# Held out: the data/eval_human clips none of whose klettres recordings the adaptation clips use (the festival
# voice speaks other generated sentences in every clip).
if [ ! -d "$OUT/voices_eval" ]; then
  mkdir -p "$OUT/voices_eval.tmp"
  $PY - "$OUT/voices_adapt/eval_human/manifest.tsv" data/eval_human "$OUT/voices_eval.tmp" <<'PYEOF'
import json, os, shutil, sys
def rows(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            d = json.loads(r["details"]) if r.get("details", "").startswith("{") else {}
            r["recordings"] = set(d.get("text", "").split()) if r["voice"].startswith("klettres") else set()
            yield r
used = set().union(*(r["recordings"] for r in rows(sys.argv[1])))
kept = [r for r in rows(os.path.join(sys.argv[2], "manifest.tsv")) if not r["recordings"] & used]
for r in kept:
    shutil.copy(os.path.join(sys.argv[2], r["file"]), sys.argv[3])
print(f"held-out clips sharing no recording with the adaptation set: {len(kept)}", file=sys.stderr)
PYEOF
  mv "$OUT/voices_eval.tmp" "$OUT/voices_eval"
fi
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD), $(nproc --all) cores"
  /usr/bin/time -f "# wall %e s, user %U s, peak RSS %M KiB" \
    build/wavtok adapt --audio "$OUT/voices_adapt/eval_human" --eval "$OUT/voices_eval" --eval data/eval \
    -o "$OUT/adapted.wtk" -t 1 -q "$@" 2>&1
} | tee "$OUT/report.txt"
