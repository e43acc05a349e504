#!/usr/bin/python3
"""Held-out figures of QAT-exported models (docs/PTQ.md "Quantization-aware fine-tuning").

    /usr/bin/python3 python/qat_eval.py --float codec/default/wavtok-default.wtk \
        --model lsq=runs/qat-lsq/model.wtk:runs/qat-lsq --model gaqat=runs/qat-gaqat/model.wtk:runs/qat-gaqat \
        --clips data/eval --cli build/wavtok --json runs/qat-eval.json

For every clip of --clips (its filelist) and every model, `wavtok encode` (tokens, `--format txt`), `wavtok
decode` of those tokens with the same model and `wavtok eval` against the clip (STOI, mel distance). Reports per
model: tokens equal to the float model's (all clips, and the speech clips alone), the end-to-end STOI / mel
distance on the speech clips (manifest kind "speech"), and, for a model given with its run directory, the share of
the engine's tokens equal to the fake-quant reference's (python/qat.py in the engine's arithmetic).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def read_wav(path):
    with wave.open(path, "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def encode(cli, model, clip, out):
    subprocess.run([cli, "encode", clip, "-m", model, "-o", out, "--format", "txt", "-q", "-t", "1"], check=True)
    with open(out) as f:
        return np.array([int(v) for v in f.read().split()], dtype=np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--float", required=True, help="the float model (.wtk)")
    ap.add_argument("--model", action="append", default=[], help="NAME=MODEL.wtk[:RUN_DIR] (repeatable)")
    ap.add_argument("--clips", default="data/eval")
    ap.add_argument("--cli", default="build/wavtok")
    ap.add_argument("--json", default=None)
    ap.add_argument("--max-clips", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    kinds = {}
    with open(os.path.join(a.clips, "manifest.tsv")) as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            kinds[p[0]] = p[2]
    clips = sorted(kinds)
    if a.max_clips:
        clips = clips[: a.max_clips]
    models = [("float", a.float, None)]
    for m in a.model:
        name, rest = m.split("=", 1)
        path, run = (rest.split(":", 1) + [None])[:2]
        models.append((name, path, run))
    res = {}
    with tempfile.TemporaryDirectory() as d:
        toks = {}
        for name, path, run in models:
            ref_model = None
            if run:
                import qat
                ref_model, st = qat.load_run(run)
                qat.set_engine_exact(ref_model)
                e = qat.codebook(ref_model).detach()
            r = {"model": path, "clips": len(clips), "frames": 0, "kept": 0, "speech_frames": 0, "speech_kept": 0,
                 "ref_frames": 0, "ref_equal": 0, "stoi": [], "mel": []}
            for c in clips:
                clip = os.path.join(a.clips, c)
                codes = encode(a.cli, path, clip, os.path.join(d, "t.txt"))
                toks[(name, c)] = codes
                f = toks[("float", c)]
                n = min(len(f), len(codes))
                r["frames"] += n
                r["kept"] += int((f[:n] == codes[:n]).sum())
                if kinds[c] == "speech":
                    r["speech_frames"] += n
                    r["speech_kept"] += int((f[:n] == codes[:n]).sum())
                    subprocess.run([a.cli, "decode", os.path.join(d, "t.txt"), "-m", path, "-o",
                                    os.path.join(d, "y.wav"), "-q", "-t", "1"], check=True)
                    out = subprocess.run([a.cli, "eval", clip, os.path.join(d, "y.wav"), "--json"], check=True,
                                         capture_output=True, text=True).stdout
                    j = json.loads(out)
                    r["stoi"].append(j["stoi"])
                    r["mel"].append(j["mel_distance"])
                if ref_model is not None:
                    x = torch.from_numpy(read_wav(clip))[None]
                    with torch.no_grad():
                        z = ref_model.feature_extractor.encoder(x[:, None])
                    rc = qat.nearest_codes(z, e).reshape(-1).numpy()
                    m = min(len(rc), len(codes))
                    r["ref_frames"] += m
                    r["ref_equal"] += int((rc[:m] == codes[:m]).sum())
            r["tokens_pct"] = 100.0 * r["kept"] / max(r["frames"], 1)
            r["speech_tokens_pct"] = 100.0 * r["speech_kept"] / max(r["speech_frames"], 1)
            r["stoi_mean"] = float(np.mean(r["stoi"])) if r["stoi"] else float("nan")
            r["mel_mean"] = float(np.mean(r["mel"])) if r["mel"] else float("nan")
            if ref_model is not None:
                r["engine_eq_reference_pct"] = 100.0 * r["ref_equal"] / max(r["ref_frames"], 1)
                r["step"] = int(st["step"])
            res[name] = r
            print(f"{name}: tokens = float {r['tokens_pct']:.2f}% ({r['kept']}/{r['frames']}, {len(clips)} clips), "
                  f"speech {r['speech_tokens_pct']:.2f}%; STOI {r['stoi_mean']:.4f}, mel {r['mel_mean']:.4f} on "
                  f"{len(r['stoi'])} speech clips"
                  + (f"; engine = reference {r['engine_eq_reference_pct']:.2f}% ({r['ref_equal']}/{r['ref_frames']})"
                     if ref_model is not None else ""), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
