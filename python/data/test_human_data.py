#!/usr/bin/python3
"""Checks of the human-voice data splits (python/data/human.py via make_dataset.py), run by CTest (python_human_data).

1. Held-out speakers: the eval_human and train_human splits draw from disjoint klettres-data speakers and festival
   voices, and neither pool is empty (the packages of scripts/setup.sh are installed).
2. Reproducible: the same split written twice is bit-identical (one seeded RNG per clip, sox in repeatable mode).
3. Resumable: a split written in two runs (2 clips, then extended to 3) equals one written at once; asking for fewer
   clips than exist lists only those.
4. The eval clips are 3-6 s and every clip names its voice; no training clip uses a held-out voice.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import human  # noqa: E402

MAKE = [sys.executable, os.path.join(HERE, "make_dataset.py")]


def make(out, *args):
    r = subprocess.run(MAKE + ["--out", out] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        sys.exit(f"FAIL: make_dataset.py {' '.join(args)}:\n{r.stdout}")


def files(d):
    with open(os.path.join(d, "filelist")) as f:
        names = f.read().split()
    out = {}
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            out[n] = f.read()
    return out


def manifest(d):
    with open(os.path.join(d, "manifest.tsv"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)
    print("ok:", msg)


def main():
    spk = human.klettres_speakers()
    fest = human.festival_voices()
    held_kl = [k for k in spk if k in human.KLETTRES_EVAL]
    train_kl = [k for k in spk if k not in human.KLETTRES_EVAL]
    held_fe = [v for v in fest if v in human.FESTIVAL_EVAL]
    train_fe = [v for v in fest if v not in human.FESTIVAL_EVAL]
    check(len(held_kl) >= 3 and len(train_kl) >= 10,
          f"klettres-data speakers: {len(train_kl)} for training, {len(held_kl)} held out")
    check(len(held_fe) >= 1 and len(train_fe) >= 2, f"festival voices: {train_fe} for training, {held_fe} held out")
    check(not set(held_kl) & set(train_kl) and not set(held_fe) & set(train_fe), "held-out pools are disjoint")

    with tempfile.TemporaryDirectory(prefix="wavtok_humandata_") as t:
        a, b, c = (os.path.join(t, x) for x in "abc")
        make(a, "--splits", "eval_human", "--human-eval-clips", "3")
        make(b, "--splits", "eval_human", "--human-eval-clips", "3")
        fa, fb = files(os.path.join(a, "eval_human")), files(os.path.join(b, "eval_human"))
        check(len(fa) == 3 and fa == fb, "eval_human written twice is bit-identical (3 clips)")
        make(c, "--splits", "eval_human", "--human-eval-clips", "2")
        make(c, "--splits", "eval_human", "--human-eval-clips", "3")
        check(files(os.path.join(c, "eval_human")) == fa, "eval_human written as 2 clips + resumed to 3 == at once")
        make(c, "--splits", "eval_human", "--human-eval-clips", "1")
        check(list(files(os.path.join(c, "eval_human"))) == sorted(fa)[:1], "asking for fewer clips lists the first")
        held_voices = {f"klettres-{k}" for k in human.KLETTRES_EVAL} | {f"festival-{v}" for v in human.FESTIVAL_EVAL}
        for m in manifest(os.path.join(a, "eval_human")):
            check(3.0 <= float(m["seconds"]) <= 6.0 and m["voice"] in held_voices and m["kind"] == "human",
                  f"eval clip {m['file']}: {m['seconds']} s, held-out voice {m['voice']}")
            det = json.loads(m["details"])
            if m["voice"].startswith("klettres"):
                check(len(det["text"].split()) >= 2, f"eval clip {m['file']} joins {len(det['text'].split())} recordings")
        make(a, "--splits", "train_human", "--human-minutes", "0.3")
        tm = manifest(os.path.join(a, "train_human"))
        check(tm and all(m["voice"] not in held_voices for m in tm),
              f"train_human ({len(tm)} clips) uses no held-out voice: {sorted({m['voice'] for m in tm})}")
    print("PASS")


if __name__ == "__main__":
    main()
