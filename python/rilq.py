"""RILQ: rank-r float adapters on a quantized model's low-bit layers, fitted to a model-wise loss.

    /usr/bin/python3 python/rilq.py --float codec/default/wavtok-default.wtk --quant model-w4.wtk \\
        --calib data/train --max-clips 8 --rank 8 --steps 300 -o model-w4-rilq.wtk

The quantized model (a version 2 .wtk from `wavtok quantize`: s8 weights, or the packed group-wise low-bit weights
of the configs/quant/w4-*.yaml recipes) runs its decoder in an exact PyTorch emulation of the engine's int8/W4
layers (python/wtk_quant.py). Each chosen Linear layer NAME gets y += (x A^T) B^T with
A [r, Cin], B [Cout, r] (r <= 16); each chosen convolution (backbone.embed, the pos_net ResnetBlock convs)
y += B (A * x) with A [r, Cin, K] a convolution of the layer's padded input and B [Cout, r] a 1x1 mix. Fitted with Adam on calibration audio to the discrepancy of the WHOLE decoder
against the float model (not layer by layer, as in RILQ, Lee et al. 2024): relative MSE of the backbone's output
features plus L1 of the log-mel spectrogram of the decoded audio, on the float tokens of the calibration clips.
Adapters start from a truncated SVD of the layer's weight error (--init svd) or at zero (--init zero: A random,
B = 0); the state with the lowest loss over all calibration segments is kept. They are written beside the
quantized weights as NAME.lora_a / NAME.lora_b (float32; feature bit 4 in the header, docs/PTQ.md "Low-rank
adapters"); every other tensor, packed low-bit weights included, is written back byte for byte. The engine runs the
adapters as a small float GEMM beside the quantized one.

Prints one JSON line: the loss without adapters, at initialisation and fitted, the layers and the time taken.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from losses import MelSpectrogram, safe_log  # noqa: E402
from wavtok_ref import load_wavtokenizer, read_wav, resample  # noqa: E402
from wtk_io import FEATURE_INT8, FEATURE_LOWBIT, WtkError, WtkFile, load_wtk_as_reference  # noqa: E402
from wtk_quant import float_linear_weight, quantized_decoder  # noqa: E402

MAX_RANK = 16


def load_float(path, config=None):
    if path.endswith(".wtk"):
        return load_wtk_as_reference(path)
    if config is None:
        config = os.path.join(os.path.dirname(path), "config.yaml")
    return load_wavtokenizer(path, config)


def calib_segments(model, calib, max_clips, max_seconds, frames):
    """Float-token latents of the calibration clips, cut into segments of `frames` frames: (N, D, frames)."""
    if os.path.isdir(calib):
        files = sorted(os.path.join(calib, f) for f in os.listdir(calib) if f.endswith(".wav"))[:max_clips]
    else:
        files = [calib]
    if not files:
        raise WtkError(f"{calib}: no .wav files to fit on")
    segs = []
    sr = model.sample_rate
    for fn in files:
        x, rate = read_wav(fn)
        if x.ndim > 1:
            x = x.mean(axis=1)
        if rate != sr:
            x = resample(x, rate, sr)
        x = x[:int(max_seconds * sr)].astype(np.float32)
        if len(x) < model.hop_length * frames:
            continue
        feats, _, _ = model.encode(torch.from_numpy(x))
        for s in range(0, feats.shape[-1] - frames + 1, frames):
            segs.append(feats[0, :, s:s + frames])
    if not segs:
        raise WtkError(f"{calib}: no clip is {frames} frames long")
    return torch.stack(segs)


class ModelwiseLoss:
    """relative MSE of the backbone output + mel_weight * L1(log mel) of the audio, against the float decoder."""

    def __init__(self, teacher, feats, bandwidth_id, mel_weight, margin=8):
        self.feats, self.mel_weight = feats, mel_weight
        # frames at each end of a segment left out of the loss: a segment decoded alone has edges that a clip
        # decoded whole does not, and the adapters must not learn those
        self.m = margin if feats.shape[-1] > 4 * margin else 0
        self.hop = teacher.hop_length
        self.bw = torch.tensor([bandwidth_id])
        self.mel = MelSpectrogram(teacher.sample_rate, 1024, 256, 100)
        with torch.no_grad():
            self.h, self.audio, self.logmel = [], [], []
            for i in range(len(feats)):
                h = teacher.backbone(feats[i:i + 1], bandwidth_id=self.bw)
                a = self.trim_audio(teacher.head(h))
                h = self.trim_frames(h)
                self.h.append(h[0])
                self.logmel.append(safe_log(self.mel(a))[0])
            self.h, self.logmel = torch.stack(self.h), torch.stack(self.logmel)

    def trim_frames(self, h):  # (B, F, C)
        return h[:, self.m:h.shape[1] - self.m] if self.m else h

    def trim_audio(self, a):  # (B, F * hop)
        k = self.m * self.hop
        return a[:, k:a.shape[1] - k] if k else a

    def __call__(self, student, idx):
        h = student.backbone(self.feats[idx], bandwidth_id=self.bw)
        a = self.trim_audio(student.head(h))
        h = self.trim_frames(h)
        ht = self.h[idx]
        feat = ((h - ht) ** 2).mean() / (ht ** 2).mean()
        mel = (safe_log(self.mel(a)) - self.logmel[idx]).abs().mean()
        return feat + self.mel_weight * mel

    def full(self, student, batch=8):
        with torch.no_grad():
            n = len(self.feats)
            tot = 0.0
            for s in range(0, n, batch):
                idx = torch.arange(s, min(n, s + batch))
                tot += float(self(student, idx)) * len(idx)
            return tot / n


LAYER_SETS = ("low", "low-linear", "int8")


def choose_layers(student, which):
    """low: the low-bit layers that take adapters (Linear, backbone.embed, pos_net convs); low-linear: the low-bit
    Linear layers only; int8: every quantized Linear; else a regex on the names of the layers that take adapters."""
    out = []
    for name, q in student.quant_layers.items():
        if not q.takes_adapter():
            continue
        if which in ("low-linear", "int8") and not q.is_linear:
            continue
        if which in ("low", "low-linear") and q.weight_bits() >= 8:
            continue
        if which not in LAYER_SETS and not re.search(which, name):
            continue
        out.append(name)
    return out


def init_adapter(teacher, q, name, rank, init, gen):
    """(A, B): svd = the best rank-r approximation of the weight error in the input's space,
    W_float - diag(weight_scale) codes diag(1 / act_smooth) (a conv's [Cout, Cin, K] flattened to [Cout, Cin K]);
    zero = A small random, B = 0."""
    cout = q.codes.shape[0]
    tail = tuple(q.codes.shape[1:])  # (Cin,) or (Cin, K)
    fan_in = int(np.prod(tail))
    if init == "zero":
        return torch.randn(rank, *tail, generator=gen) / math.sqrt(fan_in), torch.zeros(cout, rank)
    wf, _ = float_linear_weight(teacher, name)
    col = (q.inv * q.act_scale).view((1, -1) + (1,) * (len(tail) - 1))
    wq = q.codes * (q.out_scale / q.act_scale).view((-1,) + (1,) * len(tail)) * col
    u, s, vh = torch.linalg.svd((wf - wq).reshape(cout, fan_in).double(), full_matrices=False)
    r = min(rank, len(s))
    sq = s[:r].sqrt()
    a = (sq[:, None] * vh[:r]).float().reshape((r,) + tail)
    return a, (u[:, :r] * sq[None, :]).float()


def fit(float_model, qfile, calib, rank=8, steps=300, lr=5e-4, layers="low", init="svd", max_clips=8,
        max_seconds=10.0, frames=100, batch=8, mel_weight=1.0, bandwidth_id=0, seed=0, eval_every=50,
        log=None, segments=None, margin=8):
    """Fits adapters; returns (adapters {name: (A, B)}, summary dict). `segments` overrides the calibration data."""
    if not 1 <= rank <= MAX_RANK:
        raise WtkError(f"rank must be 1..{MAX_RANK}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    if any(n.endswith((".lora_a", ".lora_b")) for n in qfile.entries):
        raise WtkError(f"{qfile.path}: already has adapters; fit on the quantized model without them")
    teacher = float_model
    student = quantized_decoder(teacher, qfile)
    names = choose_layers(student, layers)
    if not names:
        raise WtkError(f"{qfile.path}: no quantized layer that takes adapters matches --layers {layers!r}")
    feats = segments if segments is not None else calib_segments(teacher, calib, max_clips, max_seconds, frames)
    loss = ModelwiseLoss(teacher, feats, bandwidth_id, mel_weight, margin)
    none = loss.full(student)
    if log:
        log(f"{len(feats)} segments of {feats.shape[-1]} frames; {len(names)} layers; loss without adapters {none:.5f}")
    params = []
    for n in names:
        q = student.quant_layers[n]
        a, b = init_adapter(teacher, q, n, rank, init, gen)
        q.set_adapter(a, b)
        params += [q.lora_a, q.lora_b]
    start = loss.full(student)
    best = start
    best_state = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(1, steps + 1):
        idx = torch.randperm(len(feats), generator=gen)[:batch]
        opt.zero_grad()
        v = loss(student, idx)
        v.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            cur = loss.full(student)
            if cur < best:
                best, best_state = cur, [p.detach().clone() for p in params]
            if log:
                log(f"step {step}/{steps}: batch loss {float(v):.5f}, calibration loss {cur:.5f} (best {best:.5f})")
    with torch.no_grad():
        for p, s in zip(params, best_state):
            p.copy_(s)
    adapters = {n: (student.quant_layers[n].lora_a.detach().numpy().copy(),
                    student.quant_layers[n].lora_b.detach().numpy().copy()) for n in names}
    summary = dict(loss_without=none, loss_init=start, loss_fitted=best, layers=names, rank=rank, steps=steps,
                   segments=int(len(feats)), frames=int(feats.shape[-1]), seconds=round(time.time() - t0, 1))
    return adapters, summary


def attach(qfile, adapters):
    for n, (a, b) in adapters.items():
        qfile.set_f32(n + ".lora_a", a)
        qfile.set_f32(n + ".lora_b", b)
    return qfile


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--float", required=True, dest="float_model", help="the float model (.wtk, or .ckpt + --config)")
    ap.add_argument("--config", help="config.yaml for a .ckpt float model (default: beside it)")
    ap.add_argument("--quant", required=True, help="the quantized model (.wtk from `wavtok quantize`)")
    ap.add_argument("--calib", required=True, help="folder of calibration .wav files (or one .wav)")
    ap.add_argument("-o", "--output", required=True, help="quantized model with adapters (.wtk)")
    ap.add_argument("--rank", type=int, default=8, help=f"adapter rank, 1..{MAX_RANK} (default 8)")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps (default 300)")
    ap.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    ap.add_argument("--layers", default="low",
                    help="low: the quantized layers below 8 bits that take adapters (s8 codes within 7 bits, or "
                         "packed low-bit weights averaging below 8 code bits): Linear layers, backbone.embed and the "
                         "pos_net convs (default); low-linear: those Linear layers only; int8: every quantized "
                         "Linear; else a regex on the names of the quantized layers that take adapters")
    ap.add_argument("--init", choices=("svd", "zero"), default="svd", help="adapter start (default svd)")
    ap.add_argument("--max-clips", type=int, default=8, help="calibration clips, in name order (default 8)")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="seconds used per clip (default 10)")
    ap.add_argument("--frames", type=int, default=100, help="frames per training segment (default 100)")
    ap.add_argument("--batch", type=int, default=8, help="segments per step (default 8)")
    ap.add_argument("--mel-weight", type=float, default=1.0, help="weight of the log-mel L1 term (default 1)")
    ap.add_argument("--margin", type=int, default=8,
                    help="frames at each end of a segment left out of the loss (default 8)")
    ap.add_argument("--bandwidth-id", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    a = ap.parse_args(argv)
    for v, lo, hi, what in ((a.rank, 1, MAX_RANK, "--rank"), (a.steps, 0, 10 ** 7, "--steps"),
                            (a.max_clips, 1, 10 ** 6, "--max-clips"), (a.frames, 8, 10 ** 5, "--frames"),
                            (a.batch, 1, 4096, "--batch")):
        if not lo <= v <= hi:
            ap.error(f"{what} must be {lo}..{hi}")
    if not (a.lr > 0 and math.isfinite(a.lr)) or not (a.max_seconds > 0 and math.isfinite(a.max_seconds)):
        ap.error("--lr and --max-seconds must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        qfile = WtkFile.read(a.quant)
        if not qfile.features & (FEATURE_INT8 | FEATURE_LOWBIT):
            raise WtkError(f"{a.quant}: not a quantized model (no int8 or low-bit feature in its header)")
        fm = load_float(a.float_model, a.config)
        log = None if a.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        adapters, summary = fit(fm, qfile, a.calib, rank=a.rank, steps=a.steps, lr=a.lr, layers=a.layers,
                                init=a.init, max_clips=a.max_clips, max_seconds=a.max_seconds, frames=a.frames,
                                batch=a.batch, mel_weight=a.mel_weight, bandwidth_id=a.bandwidth_id, seed=a.seed,
                                log=log, margin=a.margin)
        attach(qfile, adapters).write(a.output)
    except (WtkError, OSError, ValueError, RuntimeError) as e:
        print(f"rilq: {e}", file=sys.stderr)
        return 1
    summary["output"] = a.output
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
