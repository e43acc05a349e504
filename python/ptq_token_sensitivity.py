#!/usr/bin/python3
"""How close to the float tokens can an int8 SEANet encoder get on a model? Fake-quantizes every encoder conv
of the PyTorch reference (s8 symmetric per-output-channel weights; u8 asymmetric inputs) and reports the
token agreement with the float encoder on held-out clips, for:
  weights-only     s8 weights, float inputs (the ceiling of any W8A8 recipe);
  tensor           + inputs quantized per tensor with the clip's own min/max (dynamic; a calibrated static
                   range, as `wavtok quantize` uses, can only be worse);
  block-N          + inputs quantized with a min/max per block of N time steps (finer dynamic ranges);
  lstm-int8        the convs float, the LSTM as `wavtok quantize` runs it (nn/layers.h LstmInt8Params): layer
                   inputs and hidden states u8 = rint(127 v + 128), the layer-0 input divided by its max |x| (per
                   clip here, calibrated in the engine), s8 weights with one scale per row of each matrix;
  --per-layer      also each conv alone (s8 weights, per-tensor dynamic u8 input), the others float.

    /usr/bin/python3 python/ptq_token_sensitivity.py [--model codec/default/wavtok-default.wtk] [--clips 8] data/eval
"""
import argparse
import os
import sys
import wave

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wtk_io import load_wtk_as_reference  # noqa: E402
from wavtok_ref.seanet import NormConv1d, SLSTM  # noqa: E402


def read_wav(path):
    with wave.open(path) as w:
        return torch.from_numpy(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768)


def fake_u8(x, lo, hi):
    s = (hi - lo).clamp(min=1e-8) / 255.0
    z = torch.round(-lo / s)
    return (torch.clamp(torch.round(x / s) + z, 0, 255) - z) * s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="codec/default/wavtok-default.wtk")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--per-layer", action="store_true")
    ap.add_argument("eval_dir")
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = load_wtk_as_reference(a.model)
    names = [l.strip() for l in open(os.path.join(a.eval_dir, "filelist")) if l.strip()][: a.clips]
    clips = [read_wav(os.path.join(a.eval_dir, n)) for n in names]
    mode = {"kind": None, "block": 0, "only": None}
    plain = NormConv1d.forward
    plain_lstm = SLSTM.forward

    def lstm_forward(self, x):
        if mode["kind"] != "lstm":
            return plain_lstm(self, x)
        L, H = self.lstm.num_layers, self.lstm.hidden_size
        seq = x[0].T  # (T, C), batch 1
        a = seq.abs().max().clamp(min=1e-12)
        mats = []
        for l in range(L):
            mats += [getattr(self.lstm, f"weight_ih_l{l}") * (a if l == 0 else 1), getattr(self.lstm, f"weight_hh_l{l}")]
        # s8 rows with one scale per row of each matrix (the recipes' default, lstm_scales: per_matrix)
        sws = [m_.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127 for m_ in mats]
        q = [torch.clamp(torch.round(m_ / sw), -127, 127) * sw for m_, sw in zip(mats, sws)]

        def u8(v):
            return (torch.clamp(torch.round(v * 127 + 128), 0, 255) - 128) / 127

        inp = u8(seq / a)
        for l in range(L):
            b = getattr(self.lstm, f"bias_ih_l{l}") + getattr(self.lstm, f"bias_hh_l{l}")
            gx = inp @ q[2 * l].T + b
            h, c, outs = torch.zeros(H), torch.zeros(H), []
            for t in range(seq.shape[0]):
                i, f, g, o = (gx[t] + q[2 * l + 1] @ h).chunk(4)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = u8(torch.sigmoid(o) * torch.tanh(c))  # the next step and layer see the u8 code
                outs.append(h)
            inp = torch.stack(outs)
        return inp.T[None] + x if self.skip else inp.T[None]

    SLSTM.forward = lstm_forward

    def forward(self, x):
        if mode["kind"] in (None, "lstm") or (mode["only"] is not None and self is not mode["only"]):
            return plain(self, x)
        c = self.conv
        sw = c.weight.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1e-12) / 127
        w = torch.clamp(torch.round(c.weight / sw), -127, 127) * sw
        if mode["kind"] == "tensor" or mode["only"] is not None:
            x = fake_u8(x, x.min(), x.max())
        elif mode["kind"] == "block":
            B, C, L = x.shape
            n = mode["block"]
            nb = (L + n - 1) // n
            xb = F.pad(x, (0, nb * n - L)).reshape(B, C, nb, n)
            x = fake_u8(xb, xb.amin(dim=(1, 3), keepdim=True), xb.amax(dim=(1, 3), keepdim=True)).reshape(B, C, nb * n)[..., :L]
        return F.conv1d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)

    NormConv1d.forward = forward

    def codes():
        with torch.no_grad():
            return [m.encode(c)[1].flatten() for c in clips]

    ref = codes()
    total = sum(r.numel() for r in ref)
    print(f"{a.model}: {len(clips)} clips of {a.eval_dir}, {total} frames")
    # near ties: the relative gap between the nearest and the second-nearest codeword
    with torch.no_grad():
        lat = torch.cat([m.encode(c)[2][0].T for c in clips])  # (frames, D)
        d = torch.cdist(lat, m.codebooks) ** 2
        two = d.topk(2, dim=1, largest=False).values
        gap = (two[:, 1] - two[:, 0]) / two[:, 0].clamp(min=1e-12)
    print(f"nearest vs second-nearest codeword (squared distance): median gap {100 * gap.median():.2f}%, "
          f"{100 * float((gap < 0.01).float().mean()):.1f}% of frames within 1%, "
          f"{100 * float((gap < 0.05).float().mean()):.1f}% within 5%")
    for kind, block in [("weights-only", 0), ("tensor", 0), ("block", 256), ("block", 64), ("block", 16)]:
        mode["kind"], mode["block"] = ("weights" if kind == "weights-only" else kind), block
        got = codes()
        same = sum(int((r == g).sum()) for r, g in zip(ref, got))
        label = f"block-{block}" if kind == "block" else kind
        print(f"{label:>14}: {100 * same / total:6.2f}% of the float tokens", flush=True)
    mode["kind"], mode["block"] = "lstm", 0
    got = codes()
    print(f"{'lstm-int8':>14}: {100 * sum(int((r == g).sum()) for r, g in zip(ref, got)) / total:6.2f}% of the float tokens", flush=True)
    if a.per_layer:
        mode["kind"] = "tensor"
        for name, mod in m.named_modules():
            if isinstance(mod, NormConv1d) and "encoder" in name:
                mode["only"] = mod
                got = codes()
                same = sum(int((r == g).sum()) for r, g in zip(ref, got))
                print(f"  {name}: {100 * same / total:6.2f}%", flush=True)
        mode["only"] = None


if __name__ == "__main__":
    main()
