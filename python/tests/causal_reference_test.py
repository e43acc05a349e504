#!/usr/bin/env python3
"""The PyTorch reference's causal model (WavTokenizerConfig.causal) looks ahead no further than its closed form.

A small random-weight causal WavTokenizer encodes and decodes a signal, then the same signal changed from sample s
on: encoder frames before s // hop and decoded samples before (s // hop) * hop - pad (pad = (n_fft - hop) / 2, the
iSTFT's trim) must be bit-identical, and the first changed ones must lie just there (the frame is exact; the audio
within 32 samples, where the Hann window's first taps, ~1e-4 and less, can vanish in float rounding). The
worst case over s is the model's causal_latency_samples (hop + pad). Also: a config that is not causal everywhere
is refused. Run by ctest (python_causal_reference); ~3 s.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wavtok_ref import WavTokenizer  # noqa: E402


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    kw = dict(n_filters=8, dimension=32, ratios=[8, 5, 4, 2], codebook_size=64, n_q=1, backbone_dim=64,
              intermediate_dim=128, num_layers=2, adanorm_num_embeddings=4, n_fft=640, hop_length=320,
              causal=True, pad_mode="constant", pos_net_norm="affine", attention_window=[8, 0])
    m = WavTokenizer(**kw).eval()
    hop, pad = 320, (640 - 320) // 2
    assert m.cfg.causal_latency_samples == hop + pad == 480
    x = torch.randn(1, 8000) * 0.1
    failures = []
    with torch.no_grad():
        lat = m.feature_extractor.encoder(x[:, None])
        y = m.decode(lat)
        for s in (1000, 3200, 3201, 5119):
            x2 = x.clone()
            x2[0, s:] += 0.3 * torch.randn(x.shape[1] - s)
            lat2 = m.feature_extractor.encoder(x2[:, None])
            y2 = m.decode(lat2)
            first_frame = int(((lat - lat2).abs().amax(1)[0] > 0).nonzero()[0])
            first_sample = int(((y - y2).abs()[0] > 0).nonzero()[0])
            if first_frame != s // hop:
                failures.append(f"s={s}: first changed latent frame {first_frame}, expected {s // hop}")
            bound = (s // hop) * hop - pad
            if not bound <= first_sample <= bound + 32:
                failures.append(f"s={s}: first changed audio sample {first_sample}, expected {bound} .. {bound + 32}")
    for bad in (dict(attention_window=[8, 1]), dict(pos_net_norm="group"), dict(n_fft=1280)):
        try:
            WavTokenizer(**{**kw, **bad})
            failures.append(f"accepted a causal config with {bad}")
        except ValueError:
            pass
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("causal reference: changes reach no latent frame before s // hop and no sample before (s // hop) * hop - pad")


if __name__ == "__main__":
    main()
