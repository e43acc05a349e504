#!/usr/bin/python3
"""Score a training checkpoint on the held-out speech clips (for A/B tests during training).

    /usr/bin/python3 python/eval_run.py runs/v2 [--clips 32] [--continuous] [--stoi] [--out DIR]
    /usr/bin/python3 python/eval_run.py runs/v6/some.ckpt | codec/default/wavtok-default.wtk [--eval-dir data/eval_human]

Loads runs/<name>/last.ckpt (model weights only), reconstructs the held-out clips of kind "speech"
(data/eval/manifest.tsv; kind "human" in data/eval_human) through the quantizer (or the continuous latents with --continuous, or when the
codebook is not initialised yet) and prints the mean mel distance (python/losses.py mel_distance: L1 of
natural-log mel magnitudes, n_fft 1024 / hop 256 / 100 mels). --stoi also runs `build/wavtok eval` on each
clip (STOI and the engine's multi-resolution mel distance, no alignment: the model has no delay).
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
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wavtok_ref import WavTokenizer  # noqa: E402
from losses import MelSpectrogram, mel_distance  # noqa: E402
from train import read_wav_int16, codebook_module  # noqa: E402


def write_wav16(path, x):
    s = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(s.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--eval-dir", default="data/eval")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--continuous", action="store_true")
    ap.add_argument("--stoi", action="store_true")
    ap.add_argument("--wavtok", default="build/wavtok")
    ap.add_argument("--out", default=None, help="keep the reconstructions here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.run.endswith(".wtk"):  # an exported model (e.g. the shipped one)
        from wtk_io import load_wtk_as_reference
        model = load_wtk_as_reference(a.run)
        st = {"step": -1}
    else:  # a run directory (its last.ckpt) or a checkpoint file
        st = torch.load(a.run if os.path.isfile(a.run) else os.path.join(a.run, "last.ckpt"), map_location="cpu",
                        weights_only=False)
        model = WavTokenizer(**st["config"]["model"])
        model.load_state_dict(st["model"])
    model.eval()
    cont = a.continuous or not bool(codebook_module(model).inited.item())
    names = []
    with open(os.path.join(a.eval_dir, "manifest.tsv")) as f:
        for line in f.read().splitlines()[1:]:
            c = line.split("\t")
            if c[2] in ("speech", "human"):
                names.append(c[0])
    names = names[: a.clips]
    mel = MelSpectrogram(24000, 1024, 256, 100)
    out = a.out or tempfile.mkdtemp(prefix="evalrun_")
    os.makedirs(out, exist_ok=True)
    d, stoi, mel2, used = [], [], [], set()
    with torch.no_grad():
        for n in names:
            x = torch.from_numpy(read_wav_int16(os.path.join(a.eval_dir, n)).astype(np.float32) / 32768.0)[None]
            x = x[:, : (x.shape[1] // model.hop_length) * model.hop_length]
            feats, codes, lat = model.encode(x)
            used.update(codes.flatten().tolist())
            y = model.decode(lat if cont else feats, 0)
            d.append(mel_distance(y, x, mel))
            if a.stoi:
                write_wav16(os.path.join(out, "ref_" + n), x[0].numpy())
                write_wav16(os.path.join(out, "dec_" + n), y[0].numpy())
                r = subprocess.run([a.wavtok, "eval", os.path.join(out, "ref_" + n), os.path.join(out, "dec_" + n),
                                    "--json"], capture_output=True, text=True, check=True)
                j = json.loads(r.stdout)
                stoi.append(j["stoi"])
                mel2.append(j.get("mel_distance", float("nan")))
    res = {"run": a.run, "step": int(st["step"]), "mode": "continuous" if cont else "quantized", "clips": len(names),
           "mel_distance_ln": round(float(np.mean(d)), 4), "codes_used": len(used) if not cont else None}
    if a.stoi:
        res.update(stoi=round(float(np.mean(stoi)), 4), wavtok_mel=round(float(np.mean(mel2)), 4))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
