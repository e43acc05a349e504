#!/usr/bin/env python3
"""How close a model's latents sit to a token flip, and whether a quantized encoder's latent error explains the
tokens it loses (docs/PTQ.md "QAT with per-token activations", v7).

For every frame of the float model's latents z (first VQ level), the distance to the bisecting hyperplane between
its nearest code c1 and the runner-up c2 is gap = (|z - c2|^2 - |z - c1|^2) / (2 |c1 - c2|). A quantized encoder
whose latent is z + e flips the token when e's component across that hyperplane exceeds the gap; for an error with
no preferred direction in D dims that component is about |e| / sqrt(D). The script prints the gap percentiles, each
model's kept tokens, latent SNR and error norms, and the flips that model predicts for the error scaled down.

    /usr/bin/python3 python/vq_margins.py --float codec/default/wavtok-default.wtk \
        --model qat=/tmp/qat.wtk --model ptq=/tmp/ptq.wtk data/eval data/eval_human
Latents come from `wavtok encode --latents` (kept in --work, reused when present).
"""
import argparse
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wtk_io import read_wtk  # noqa: E402

CODEBOOK = "feature_extractor.encodec.quantizer.vq.layers.0._codebook.embed"


def latents(cli, model, clip, path):
    if not os.path.exists(path):
        subprocess.run([cli, "encode", clip, "-m", model, "-o", path + ".wtt", "--latents", path, "-q"], check=True)
        os.remove(path + ".wtt")
    return np.load(path)[0].T.astype(np.float64)  # (frames, dim)


def sq_dist(z, c):
    return (z * z).sum(1, keepdims=True) - 2 * z @ c.T + (c * c).sum(1)[None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--float", required=True, help="the float model (.wtk)")
    ap.add_argument("--model", action="append", default=[], help="NAME=MODEL.wtk, a quantized model (repeatable)")
    ap.add_argument("--cli", default="build/wavtok")
    ap.add_argument("--work", default="/tmp/vq_margins", help="latent cache")
    ap.add_argument("dirs", nargs="+", help="clip directories with a filelist")
    a = ap.parse_args()
    _, w = read_wtk(a.float)
    if CODEBOOK not in w:
        sys.exit(f"{a.float}: no {CODEBOOK} (a WavTokenizer model is needed)")
    cb = np.asarray(w[CODEBOOK], dtype=np.float64)
    models = dict(m.split("=", 1) for m in a.model)
    os.makedirs(a.work, exist_ok=True)
    gap, norm, per = [], [], {n: {"keep": [], "err": [], "set": []} for n in models}
    for d in a.dirs:
        for f in open(os.path.join(d, "filelist")).read().split():
            tag = os.path.basename(os.path.normpath(d)) + "_" + os.path.splitext(f)[0]
            z = latents(a.cli, a.float, os.path.join(d, f), os.path.join(a.work, tag + ".float.npy"))
            dz = sq_dist(z, cb)
            order = np.argsort(dz, 1)
            c1, c2 = order[:, 0], order[:, 1]
            rows = np.arange(len(z))
            gap.append((dz[rows, c2] - dz[rows, c1]) / (2 * np.linalg.norm(cb[c1] - cb[c2], axis=1)))
            norm.append(np.linalg.norm(z, axis=1))
            for n, m in models.items():
                zq = latents(a.cli, m, os.path.join(d, f), os.path.join(a.work, f"{tag}.{n}.npy"))
                per[n]["keep"].append(np.argmin(sq_dist(zq, cb), 1) == c1)
                per[n]["err"].append(np.linalg.norm(zq - z, axis=1))
                per[n]["set"] += [os.path.basename(os.path.normpath(d))] * len(z)
    gap, norm = np.concatenate(gap), np.concatenate(norm)
    dim = cb.shape[1]
    print(f"{len(gap)} frames, {cb.shape[0]} codes of {dim} dims; latent norm median {np.median(norm):.3f}")
    print("gap to the flip, percentiles 1 / 3 / 5 / 10 / 50: " +
          " / ".join(f"{np.percentile(gap, p):.4f}" for p in (1, 3, 5, 10, 50)))
    for n in models:
        keep, err = np.concatenate(per[n]["keep"]), np.concatenate(per[n]["err"])
        sets = np.array(per[n]["set"])
        by_set = ", ".join(f"{s} {100 * keep[sets == s].mean():.2f} %" for s in dict.fromkeys(per[n]["set"]))
        snr = 10 * np.log10((norm ** 2).sum() / max((err ** 2).sum(), 1e-30))
        print(f"{n}: tokens kept {100 * keep.mean():.2f} % ({by_set}); latent SNR {snr:.1f} dB, error norm median "
              f"{np.median(err):.4f}")
        for s in (1.0, 0.7, 0.5):
            print(f"   error x{s}: frames whose gap < |error| / sqrt({dim}): {100 * (gap < s * err / np.sqrt(dim)).mean():.2f} %")


if __name__ == "__main__":
    main()
