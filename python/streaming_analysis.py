#!/usr/bin/python3
"""Why windowed (streaming) decoding of a WavTokenizer model differs from one-shot decoding.

Decodes a clip's codes one-shot and in windows (left / block / lookahead frames, as the engine's
StreamingDecoder does) with the PyTorch reference, and reports the SNR of the windowed audio against the
one-shot audio in three variants of the backbone's GroupNorm layers (pos_net):
  plain   each window normalises with its own statistics (what the engine does);
  oracle  each window uses the one-shot run's statistics (an upper bound for any GroupNorm-statistics scheme:
          what is left is the attention block, which sees only the window);
  cumul   statistics over the one-shot activations from the stream start to the window's end (a causal
          running-statistics scheme, approximated with the one-shot activations);
  posnet  each window gets the one-shot run's pos_net output (GroupNorms and attention as if it saw the whole
          clip): what is left is the ConvNeXt blocks and the head seeing only the window. Near-exact figures here
          mean that a backbone whose pos_net is local (pos_net_norm "affine" + attention_window, recipe v5)
          streams like one-shot.

    /usr/bin/python3 python/streaming_analysis.py [--model codec/default/wavtok-default.wtk] clip.wav [L/B/A ...]
"""
import argparse
import os
import sys
import wave

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wtk_io import load_wtk_as_reference  # noqa: E402


def read_wav(path):
    with wave.open(path) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: expected 16-bit mono WAV")
        return torch.from_numpy(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768)


def snr_db(x, ref):
    n = min(len(x), len(ref))
    return 10 * np.log10(float((ref[:n] ** 2).sum()) / float(((x[:n] - ref[:n]) ** 2).sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="codec/default/wavtok-default.wtk")
    ap.add_argument("clip")
    ap.add_argument("windows", nargs="*", default=["60/5/8", "150/15/10", "300/25/30"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = load_wtk_as_reference(a.model)
    feats, _, _ = m.encode(read_wav(a.clip))
    T, hop = feats.shape[-1], m.cfg.hop_length
    gns = [mod for mod in m.backbone.modules() if isinstance(mod, torch.nn.GroupNorm)]
    state = {"mode": "record", "full": {}, "end": None, "start": 0, "posnet": None}
    pos_forward = m.backbone.pos_net.forward

    def posnet_forward(x):
        if state["mode"] == "record":
            y = pos_forward(x)
            state["posnet"] = y.detach().clone()
            return y
        if state["mode"] == "posnet":
            return state["posnet"][..., state["start"]:state["end"]]
        return pos_forward(x)
    m.backbone.pos_net.forward = posnet_forward
    plain_forward = torch.nn.GroupNorm.forward

    def gn_forward(self, x):
        i = gns.index(self)
        B, C, L = x.shape
        g = x.reshape(B, self.num_groups, -1)
        if state["mode"] == "record":
            state["full"][i] = x.detach().clone()
            return plain_forward(self, x)
        if state["mode"] in ("plain", "posnet"):
            return plain_forward(self, x)
        src = state["full"][i] if state["mode"] == "oracle" else state["full"][i][..., :state["end"]]
        s = src.reshape(B, self.num_groups, -1)
        mu, var = s.mean(-1, keepdim=True), s.var(-1, unbiased=False, keepdim=True)
        y = ((g - mu) / torch.sqrt(var + self.eps)).reshape(B, C, L)
        return y * self.weight[None, :, None] + self.bias[None, :, None]

    torch.nn.GroupNorm.forward = gn_forward
    with torch.no_grad():
        ref = m.decode(feats)[0]
        print(f"{a.clip}: {T} frames; SNR of windowed vs one-shot decoding")
        modes = ("plain", "oracle", "cumul", "posnet")
        print(f"{'left/block/look':>16} " + " ".join(f"{v:>8}" for v in modes))
        for spec in a.windows:
            left, block, look = map(int, spec.split("/"))
            row = []
            for mode in modes:
                state["mode"] = mode
                out = torch.zeros_like(ref)
                for b0 in range(0, T, block):
                    s, e = max(0, b0 - left), min(T, b0 + block + look)
                    state["start"], state["end"] = s, e
                    y = m.decode(feats[..., s:e])[0]
                    b1 = min(T, b0 + block)
                    out[b0 * hop:b1 * hop] = y[(b0 - s) * hop:(b1 - s) * hop]
                row.append(snr_db(out, ref))
            print(f"{spec:>16} " + " ".join(f"{v:7.1f}dB" for v in row), flush=True)


if __name__ == "__main__":
    main()
