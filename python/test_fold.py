#!/usr/bin/python3
"""Check of train.py's fold_pos_net_group_norms (recipe v5), run by CTest (python_fold_group_norms).

Folded with the statistics of a single clip, the streamable backbone (pos_net_norm "affine") must decode that clip
exactly like the GroupNorm backbone it came from, since each GroupNorm then normalises with those same statistics.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import fold_pos_net_group_norms  # noqa: E402
from wavtok_ref import WavTokenizer  # noqa: E402


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    dims = dict(n_filters=8, dimension=32, ratios=[8, 5, 4, 2], codebook_size=64, backbone_dim=64,
                intermediate_dim=128, num_layers=2, adanorm_num_embeddings=4)
    src = WavTokenizer(**dims)
    for m in src.backbone.pos_net.modules():  # non-trivial GroupNorm affines
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    src.eval()
    dst = WavTokenizer(**dims, pos_net_norm="affine")
    missing, unexpected = dst.load_state_dict(src.state_dict(), strict=False)
    assert not unexpected, unexpected
    dst.eval()
    rng = np.random.default_rng(1)
    t = np.arange(24000) / 24000.0
    clip = (8000 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 2000 * rng.standard_normal(24000))
    clip = clip.astype(np.int16)
    noise = torch.from_numpy(rng.standard_normal(24000).astype(np.float32) * 0.05)[None]
    cb = src.feature_extractor.quantizer.vq.layers[0]._codebook  # codewords: latent frames of both clips
    with torch.no_grad():
        lat = torch.cat([src.encode(torch.from_numpy(clip.astype(np.float32) / 32768.0)[None])[2][0].T,
                         src.encode(noise)[2][0].T])
        cb.embed.copy_(lat[torch.randperm(len(lat))[:64]])
        cb.inited.fill_(1)
    fold_pos_net_group_norms(src, dst, [clip], lambda s: None)
    x = torch.from_numpy(clip.astype(np.float32) / 32768.0)[None]
    with torch.no_grad():
        feats, _, _ = src.encode(x)
        a, b = src.decode(feats), dst.decode(feats)
    err = float((a - b).abs().max() / a.abs().max())
    print(f"folded affine vs GroupNorm on the clip of the statistics: max relative error {err:.2e}")
    if not err < 1e-4:
        sys.exit("FAIL: the folded affines do not reproduce the GroupNorms")
    # On another clip the statistics differ, so the outputs must too (the check above is not vacuous).
    with torch.no_grad():
        feats2, _, _ = src.encode(noise)
        a2 = src.decode(feats2)
        err2 = float((a2 - dst.decode(feats2)).abs().max() / a2.abs().max())
    print(f"on another clip: max relative error {err2:.2e}")
    if not err2 > 1e-3:
        sys.exit("FAIL: affine and GroupNorm agree on an unrelated clip: the GroupNorms were not in use")
    print("ok")


if __name__ == "__main__":
    main()
