"""Read the engine's .wtk model file into PyTorch (the format is described in io/model_file.h).

    from wtk_io import load_wtk_as_reference
    model = load_wtk_as_reference("codec/default/wavtok-default.wtk")   # wavtok_ref.WavTokenizer, eval mode

    /usr/bin/python3 python/wtk_io.py model.wtk --ckpt out/model.ckpt --config out/config.yaml

The .wtk stores weight norm folded (NAME.weight); the reference keeps PyTorch's weight norm, so each
folded weight w is loaded as weight_v = w, weight_g = ||w|| (per output row), which folds back to w exactly.
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref import WavTokenizer  # noqa: E402

MAGIC = b"WAVTOKMF"


def read_wtk(path):
    """-> (config dict, {name: np.ndarray float32})"""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise SystemExit(f"{path}: not a wavtok model file")
    version, _flags, ylen, count = struct.unpack_from("<IIQQ", data, 8)
    if version != 1:
        raise SystemExit(f"{path}: model file version {version} not supported")
    pos = 32
    cfg = yaml.safe_load(data[pos:pos + ylen].decode())
    pos += ylen
    tensors = {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + nl].decode()
        pos += nl
        dtype, nd = struct.unpack_from("<II", data, pos)
        pos += 8
        shape = struct.unpack_from("<" + "q" * nd, data, pos)
        pos += 8 * nd
        off, nb = struct.unpack_from("<QQ", data, pos)
        pos += 16
        if dtype != 0:
            raise SystemExit(f"{path}: tensor {name} has dtype {dtype}; only float32 is supported here")
        tensors[name] = np.frombuffer(data, dtype="<f4", count=nb // 4, offset=off).reshape(shape).copy()
    return cfg, tensors


def reference_kwargs(cfg):
    if cfg["arch"] != "wavtokenizer":
        raise SystemExit("only WavTokenizer models can be loaded into the reference")
    e, q, b, h = cfg["encoder"], cfg["quantizer"], cfg["backbone"], cfg["head"]
    return dict(sample_rate=cfg["sample_rate"], n_filters=e["n_filters"], dimension=e["dimension"],
                ratios=list(e["ratios"]), codebook_size=q["bins"], n_q=q["n_q"], backbone_dim=b["dim"],
                intermediate_dim=b["intermediate_dim"], num_layers=b["num_layers"],
                adanorm_num_embeddings=b["adanorm_num_embeddings"] or None, n_fft=h["n_fft"],
                hop_length=h["hop_length"], pos_net_norm=b.get("pos_net_norm", "group"),
                attention_window=b.get("attention_window"), causal=bool(b.get("causal", False)),
                pad_mode=e.get("pad_mode", "reflect"))


def load_wtk_as_reference(path):
    cfg, tensors = read_wtk(path)
    model = WavTokenizer(**reference_kwargs(cfg))
    own = model.state_dict()
    sd = {}
    for name, w in tensors.items():
        base = name[:-len(".weight")] if name.endswith(".weight") else None
        t = torch.from_numpy(w)
        if base is not None and base + ".weight_g" in own:
            g = t.reshape(t.shape[0], -1).norm(dim=1).reshape(own[base + ".weight_g"].shape)
            sd[base + ".weight_g"], sd[base + ".weight_v"] = g, t
        else:
            sd[name] = t
    for k, v in own.items():  # codebook bookkeeping buffers the .wtk does not carry
        if k not in sd and "_codebook." in k:
            if k.endswith("inited"):
                sd[k] = torch.ones_like(v)
            elif k.endswith("embed_avg"):
                sd[k] = sd[k.replace("embed_avg", "embed")].clone()
            else:
                sd[k] = torch.ones_like(v)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # buffers the reference recomputes itself (iSTFT window, mel filters) and the unused SEANet decoder
    missing = [k for k in missing if not k.startswith(("feature_extractor.encodec.decoder.", "melspec", "head.istft."))]
    if missing or unexpected:
        raise SystemExit(f"{path}: tensors do not fit the reference: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wtk")
    ap.add_argument("--ckpt", required=True, help="release-layout .ckpt to write")
    ap.add_argument("--config", required=True, help="release-layout config.yaml to write")
    a = ap.parse_args()
    load_wtk_as_reference(a.wtk).save_checkpoint(a.ckpt, a.config)


if __name__ == "__main__":
    main()
