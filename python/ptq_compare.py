#!/usr/bin/python3
"""Quality of already-made model files against the float model on held-out audio (the quality columns of
scripts/ptq_report.sh, for models that `wavtok quantize` alone does not make, e.g. with RILQ adapters).

    /usr/bin/python3 python/ptq_compare.py --float codec/default/wavtok-default.wtk --eval-dir data/eval \\
        --max-eval 8 w4a8-pw=out/w4.wtk w4a8-pw+rilq=out/w4-rilq.wtk

Per model: tokens = float (its encoder's tokens vs the float encoder's), re-encode agreement (the float model's
tokens of the model-decoded audio vs of the float-decoded audio), SI-SNR / mel distance / STOI of the decoded float
tokens against the input (`wavtok eval`), SI-SNR against the float decoding, file size. Prints a markdown table
and writes the means as JSON (--json). measure_quality() is also what python/ptq_report.py measures with."""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(*args):
    """Runs a command; exits with its stderr if it fails. -> its stdout + stderr."""
    r = subprocess.run([str(x) for x in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{r.stderr}")
    return r.stdout + r.stderr


def tokens_txt(path):
    """A `wavtok encode --format txt` file -> its rows of token ids."""
    return [list(map(int, l.split())) for l in open(path) if l.strip()]


def agreement(t1, t2):
    """The fraction of equal tokens over the common length of each pair of rows."""
    n = same = 0
    for r1, r2 in zip(t1, t2):
        k = min(len(r1), len(r2))
        n += k
        same += sum(1 for i in range(k) if r1[i] == r2[i])
    return same / max(n, 1)


def measure_quality(wavtok, clips, models, work, engine_args=(), e2e=False):
    """The quality metrics of each model against models["float"], per clip: {model: {metric: [value per clip]}}.

    tok: its encoder's tokens = the float encoder's; reenc: the float model's tokens of the audio it decodes from
    the float tokens vs of the float-decoded audio; si_snr_db, mel_distance, stoi: that decoded audio against the
    input (`wavtok eval`); snr_vs_float: SI-SNR against the float decoding (not for the float model itself);
    e2e_stoi (with e2e): STOI of the model's own tokens decoded by the model. Work files go to work/<clip name>/;
    engine_args are added to every encode and decode (e.g. ("-t", 1))."""
    fmodel = models["float"]

    def ev(ref, deg):
        return json.loads(run(wavtok, "eval", ref, deg, "--json").strip().splitlines()[-1])

    keys = ("tok", "reenc", "si_snr_db", "mel_distance", "stoi", "snr_vs_float") + (("e2e_stoi",) if e2e else ())
    res = {m: {k: [] for k in keys} for m in models}
    for i, src in enumerate(clips):
        print(f"[{i + 1}/{len(clips)}] {os.path.basename(src)}", file=sys.stderr, flush=True)
        d = os.path.join(work, os.path.splitext(os.path.basename(src))[0])
        os.makedirs(d, exist_ok=True)
        ft = f"{d}/float.txt"
        run(wavtok, "encode", src, "-m", fmodel, "--format", "txt", "-o", ft, "-q", *engine_args)
        ftoks = tokens_txt(ft)
        for m, path in models.items():
            t = f"{d}/{m}.txt"
            if m == "float":
                t = ft
            else:
                run(wavtok, "encode", src, "-m", path, "--format", "txt", "-o", t, "-q", *engine_args)
            res[m]["tok"].append(1.0 if m == "float" else agreement(ftoks, tokens_txt(t)))
            dec = f"{d}/{m}.wav"
            run(wavtok, "decode", ft, "-m", path, "-o", dec, "-q", *engine_args)
            e = ev(src, dec)
            for k in ("si_snr_db", "mel_distance", "stoi"):
                res[m][k].append(e[k])
            if e2e:  # differs from stoi only where the encoder is quantized
                if tokens_txt(t) == ftoks:
                    res[m]["e2e_stoi"].append(e["stoi"])
                else:
                    e2e_wav = f"{d}/{m}.e2e.wav"
                    run(wavtok, "decode", t, "-m", path, "-o", e2e_wav, "-q", *engine_args)
                    res[m]["e2e_stoi"].append(ev(src, e2e_wav)["stoi"])
            rt = f"{d}/{m}.reenc.txt"
            run(wavtok, "encode", dec, "-m", fmodel, "--format", "txt", "-o", rt, "-q", *engine_args)
            if m == "float":
                res[m]["reenc"].append(1.0)
            else:
                res[m]["reenc"].append(agreement(tokens_txt(f"{d}/float.reenc.txt"), tokens_txt(rt)))
                res[m]["snr_vs_float"].append(ev(f"{d}/float.wav", dec)["si_snr_db"])
    return res


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

    clips = sorted(f for f in os.listdir(a.eval_dir) if f.endswith(".wav"))[:a.max_eval]
    if not clips:
        sys.exit(f"{a.eval_dir}: no .wav clips")
    res = measure_quality(W, [os.path.join(a.eval_dir, c) for c in clips], models, a.out, engine_args=("-t", 1))
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
