"""The engine's .wtk model file in Python (the format is described in io/model_file.h): the one reader and writer
(WtkFile, with read_wtk / read_wtk_raw / write_wtk_raw on top), and loading a float .wtk into the PyTorch reference.

    from wtk_io import load_wtk_as_reference
    model = load_wtk_as_reference("codec/default/wavtok-default.wtk")   # wavtok_ref.WavTokenizer, eval mode

    /usr/bin/python3 python/wtk_io.py model.wtk --ckpt out/model.ckpt --config out/config.yaml

The .wtk stores weight norm folded (NAME.weight); the reference keeps PyTorch's weight norm, so each
folded weight w is loaded as weight_v = w, weight_g = ||w|| (per output row), which folds back to w exactly.
"""
import argparse
import os
import re
import struct
import sys

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref import WavTokenizer  # noqa: E402

MAGIC = b"WAVTOKMF"
# Feature bits of a version 2 header (io/model_file.h). Low-bit packed weights (bit 2, dtypes 2 and 3) are not
# read here: a file that needs them is refused as having an unknown feature.
FEATURE_INT8, FEATURE_SOFTMAX, FEATURE_INT8_ATTENTION, FEATURE_LOWRANK = 1, 2, 8, 16
KNOWN_FEATURES = FEATURE_INT8 | FEATURE_SOFTMAX | FEATURE_INT8_ATTENTION | FEATURE_LOWRANK
DT_F32, DT_S8 = 0, 1
ALIGN = 64


class WtkError(Exception):
    pass


def int8_layer_of(name):
    """NAME for NAME.weight and an LSTM's NAME.weight_ih_lK / weight_hh_lK (io/model_file.cc), else ''."""
    if name.endswith(".weight"):
        return name[:-7]
    m = re.match(r"^(.*)\.weight_[ih]h_l\d+$", name)
    return m.group(1) if m else ""


class WtkFile:
    """A .wtk as (version, features, config text, {name: (dtype, shape, raw bytes)}), kept in file order.
    The one reader and writer of the format on the Python side (read_wtk, read_wtk_raw, write_wtk_raw, the
    quantized decoder of wtk_quant.py and the fuzz seeds all go through it)."""

    def __init__(self, version, features, config_text, entries, path="<memory>"):
        self.version, self.features, self.config_text, self.entries, self.path = (
            version, features, config_text, entries, path)

    @property
    def config(self):
        return yaml.safe_load(self.config_text)

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            data = f.read()

        def need(pos, n):
            if pos + n > len(data):
                raise WtkError(f"{path}: model file is truncated")

        need(0, 32)
        if data[:8] != MAGIC:
            raise WtkError(f"{path}: not a wavtok model file (bad magic)")
        version, flags, ylen, count = struct.unpack_from("<IIQQ", data, 8)
        if version not in (1, 2):
            raise WtkError(f"{path}: model file version {version} is not supported")
        features = flags if version == 2 else 0
        if features & ~KNOWN_FEATURES:
            raise WtkError(f"{path}: model file requires unknown features (bits {features & ~KNOWN_FEATURES:#x})")
        if count > 100000 or ylen > (1 << 20):
            raise WtkError(f"{path}: bad header sizes")
        pos = 32
        need(pos, ylen)
        text = data[pos:pos + ylen].decode()
        pos += ylen
        entries = {}
        for _ in range(count):
            need(pos, 4)
            (nl,) = struct.unpack_from("<I", data, pos)
            pos += 4
            need(pos, nl + 8)
            name = data[pos:pos + nl].decode()
            pos += nl
            dtype, nd = struct.unpack_from("<II", data, pos)
            pos += 8
            if nd > 8 or dtype not in (DT_F32, DT_S8):
                raise WtkError(f"{path}: tensor {name!r} has a bad header")
            need(pos, 8 * nd + 16)
            shape = struct.unpack_from("<" + "q" * nd, data, pos)
            pos += 8 * nd
            off, nb = struct.unpack_from("<QQ", data, pos)
            pos += 16
            numel = int(np.prod(shape)) if nd else 1
            if any(d < 0 for d in shape) or nb != numel * (1 if dtype == DT_S8 else 4) or off + nb > len(data):
                raise WtkError(f"{path}: tensor {name!r} has a bad size or offset")
            if dtype == DT_S8 and not features & FEATURE_INT8:
                raise WtkError(f"{path}: s8 tensor {name!r} in a file not marked int8")
            entries[name] = (dtype, tuple(shape), data[off:off + nb])
        return WtkFile(version, features, text, entries, path)

    def array(self, name):
        """float32 array; an s8 weight comes back as codes * weight_scale (what the engine's reader hands out)."""
        dtype, shape, raw = self.entries[name]
        if dtype == DT_F32:
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        codes = self.codes(name).astype(np.float32)
        sc = self.array(int8_layer_of(name) + ".weight_scale")
        return (codes.reshape(shape[0], -1) * sc[:, None]).reshape(shape)

    def codes(self, name):
        dtype, shape, raw = self.entries[name]
        if dtype != DT_S8:
            raise WtkError(f"{self.path}: {name} is not stored as s8 codes")
        return np.frombuffer(raw, dtype=np.int8).reshape(shape).copy()

    def set_f32(self, name, arr):
        a = np.asarray(arr, dtype="<f4")  # tobytes() is C order; a 0-d array keeps its empty shape
        self.entries[name] = (DT_F32, tuple(a.shape), a.tobytes())

    def set_s8(self, name, codes):
        a = np.asarray(codes, dtype=np.int8)
        self.entries[name] = (DT_S8, tuple(a.shape), a.tobytes())

    def _pieces(self):
        """The file's bytes in order, laid out as the C++ writer does (io/model_file.cc: each tensor's data at a
        64-byte aligned offset, zero padded in between, nothing after the last); the version and feature bits
        follow the tensors, as the C++ writer's do."""
        feats = 0
        for n, (dt, _, _) in self.entries.items():
            if n.endswith(".act_quant") or dt == DT_S8:
                feats |= FEATURE_INT8
            if n.endswith(".softmax_quant"):
                feats |= FEATURE_SOFTMAX
            if n.endswith((".lora_a", ".lora_b")):
                feats |= FEATURE_LOWRANK
            if n.endswith(".attn_int8"):
                feats |= FEATURE_INT8_ATTENTION
        version = 2 if feats else 1
        ytext = self.config_text.encode()
        table_bytes = sum(4 + len(n.encode()) + 8 + 8 * len(shape) + 16 for n, (_, shape, _) in self.entries.items())
        off = (32 + len(ytext) + table_bytes + ALIGN - 1) // ALIGN * ALIGN
        offsets = []
        for n, (dt, shape, raw) in self.entries.items():
            offsets.append(off)
            off += (len(raw) + ALIGN - 1) // ALIGN * ALIGN
        table = bytearray()
        for (n, (dt, shape, raw)), o in zip(self.entries.items(), offsets):
            table += struct.pack("<I", len(n.encode())) + n.encode() + struct.pack("<II", dt, len(shape))
            table += struct.pack("<" + "q" * len(shape), *shape) + struct.pack("<QQ", o, len(raw))
        head = MAGIC + struct.pack("<IIQQ", version, feats, len(ytext), len(self.entries)) + ytext + bytes(table)
        yield head
        pos = len(head)
        for (n, (dt, shape, raw)), o in zip(self.entries.items(), offsets):
            yield b"\0" * (o - pos)
            yield raw
            pos = o + len(raw)

    def tobytes(self):
        return b"".join(self._pieces())

    def write(self, path):
        """Writes the file atomically (temporary file, fsync, rename)."""
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            for piece in self._pieces():
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _read_or_exit(path):
    try:
        return WtkFile.read(path)
    except WtkError as e:
        raise SystemExit(str(e)) from None


def read_wtk(path):
    """A float model file (version 1) -> (config dict, {name: np.ndarray float32}); exits with a message on any
    other file."""
    f = _read_or_exit(path)
    if f.version != 1:
        raise SystemExit(f"{path}: model file version {f.version} not supported")
    for name, (dtype, _, _) in f.entries.items():
        if dtype != DT_F32:
            raise SystemExit(f"{path}: tensor {name} has dtype {dtype}; only float32 is supported here")
    return f.config, {name: f.array(name) for name in f.entries}


def read_wtk_raw(path):
    """-> (version, features, yaml text, [(name, np.ndarray)]) in file order; s8 tensors stay int8 codes.
    Exits with a message on a bad file."""
    f = _read_or_exit(path)
    tensors = [(name, f.codes(name) if dtype == DT_S8 else f.array(name)) for name, (dtype, _, _) in f.entries.items()]
    return f.version, f.features, f.config_text, tensors


def write_wtk_raw(path, ytext, tensors):
    """Writes [(name, np.ndarray)]: int8 arrays as s8 codes, the rest as float32; version 2 with the feature bits
    the tensors need (io/model_file.h), else version 1. Atomic (temporary file, then rename)."""
    f = WtkFile(1, 0, ytext, {})
    for name, a in tensors:
        if a.dtype == np.int8:
            f.set_s8(name, a)
        else:
            f.set_f32(name, a)
    f.write(path)


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
