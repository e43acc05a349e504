#!/usr/bin/python3
"""Quality of already-made model files against the float model on held-out audio (the quality columns of
scripts/ptq_report.sh, for models that `wavtok quantize` alone does not make, e.g. with RILQ adapters).

    /usr/bin/python3 python/ptq_compare.py --float codec/default/wavtok-default.wtk --eval-dir data/eval \\
        --max-eval 8 w4a8-pw=out/w4.wtk w4a8-pw+rilq=out/w4-rilq.wtk

Per model: tokens = float (its encoder's tokens vs the float encoder's), re-encode agreement (the float model's
tokens of the model-decoded audio vs of the float-decoded audio), SI-SNR / mel distance / STOI of the decoded float
tokens against the input (`wavtok eval`), SI-SNR against the float decoding, file size. Prints a markdown table
and writes the means as JSON (--json)."""
import argparse
import json
import os
import statistics
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=PATH of each model file to compare")
    ap.add_argument("--float", required=True, dest="float_model", help="the float model (.wtk)")
    ap.add_argument("--bin", default="build/wavtok")
    ap.add_argument("--eval-dir", default="data/eval")
    ap.add_argument("--max-eval", type=int, default=8)
    ap.add_argument("--out", default="out/ptq_compare", help="scratch folder")
    ap.add_argument("--json", help="write the per-model means here")
    a = ap.parse_args()
    W = os.path.abspath(a.bin)
    models = {"float": a.float_model}
    for m in a.models:
        name, _, path = m.partition("=")
        if not path or not os.path.exists(path):
            ap.error(f"{m}: expected NAME=PATH of an existing file")
        models[name] = path

    def run(*args):
        r = subprocess.run([str(x) for x in args], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(map(str, args))}\n{r.stderr}")
        return r.stdout + r.stderr

    def ev(ref, deg):
        return json.loads(run(W, "eval", ref, deg, "--json").strip().splitlines()[-1])

    def toks(path):
        return [list(map(int, l.split())) for l in open(path) if l.strip()]

    def agree(t1, t2):
        n = same = 0
        for r1, r2 in zip(t1, t2):
            k = min(len(r1), len(r2))
            n += k
            same += sum(1 for i in range(k) if r1[i] == r2[i])
        return same / max(n, 1)

    clips = sorted(f for f in os.listdir(a.eval_dir) if f.endswith(".wav"))[:a.max_eval]
    if not clips:
        sys.exit(f"{a.eval_dir}: no .wav clips")
    keys = ("tok", "reenc", "si_snr_db", "mel_distance", "stoi", "snr_vs_float")
    res = {m: {k: [] for k in keys} for m in models}
    for i, c in enumerate(clips):
        print(f"[{i + 1}/{len(clips)}] {c}", file=sys.stderr, flush=True)
        src = os.path.join(a.eval_dir, c)
        d = os.path.join(a.out, os.path.splitext(c)[0])
        os.makedirs(d, exist_ok=True)
        ft = f"{d}/float.txt"
        run(W, "encode", src, "-m", a.float_model, "--format", "txt", "-o", ft, "-q", "-t", 1)
        for m, path in models.items():
            t = f"{d}/{m}.txt"
            if m != "float":
                run(W, "encode", src, "-m", path, "--format", "txt", "-o", t, "-q", "-t", 1)
            res[m]["tok"].append(1.0 if m == "float" else agree(toks(ft), toks(t)))
            dec = f"{d}/{m}.wav"
            run(W, "decode", ft, "-m", path, "-o", dec, "-q", "-t", 1)
            e = ev(src, dec)
            for k in ("si_snr_db", "mel_distance", "stoi"):
                res[m][k].append(e[k])
            rt = f"{d}/{m}.reenc.txt"
            run(W, "encode", dec, "-m", a.float_model, "--format", "txt", "-o", rt, "-q", "-t", 1)
            if m == "float":
                res[m]["reenc"].append(1.0)
            else:
                res[m]["reenc"].append(agree(toks(f"{d}/float.reenc.txt"), toks(rt)))
                res[m]["snr_vs_float"].append(ev(f"{d}/float.wav", dec)["si_snr_db"])
    mean = {m: {k: (statistics.mean(v) if v else None) for k, v in r.items()} for m, r in res.items()}
    fst = mean["float"]["stoi"]
    print(f"| model | tokens = float | re-encode agreement | SI-SNR dB | mel dist | STOI | ΔSTOI | "
          f"SI-SNR vs float dec. dB | file MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, r in mean.items():
        sv = "—" if r["snr_vs_float"] is None else f"{r['snr_vs_float']:.2f}"
        print(f"| {m} | {100 * r['tok']:.2f}% | {100 * r['reenc']:.2f}% | {r['si_snr_db']:.3f} | "
              f"{r['mel_distance']:.4f} | {r['stoi']:.4f} | {r['stoi'] - fst:+.4f} | {sv} | "
              f"{os.path.getsize(models[m]) / 1e6:.2f} |")
    print(f"\n{len(clips)} clips of `{a.eval_dir}`.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"clips": clips, "models": models, "means": mean}, f, indent=1)


if __name__ == "__main__":
    main()
