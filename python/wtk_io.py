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
# Feature bits of a version 2 header (io/model_file.h).
FEATURE_INT8, FEATURE_SOFTMAX, FEATURE_LOWBIT, FEATURE_INT8_ATTENTION, FEATURE_LOWRANK = 1, 2, 4, 8, 16
FEATURE_TOKEN_ACT = 32  # NAME.act_dynamic: per-token activation ranges of an int8 Conv1d (io/model_file.h)
FEATURE_BF16_ENCODER = 64  # ENCODER.conv_bf16: the SEANet encoder's dense convs in bf16 (io/model_file.h)
FEATURE_GROUP_ACT = 128  # NAME.act_group: activation ranges per input step and group of N channels (io/model_file.h)
KNOWN_FEATURES = (FEATURE_INT8 | FEATURE_SOFTMAX | FEATURE_LOWBIT | FEATURE_INT8_ATTENTION | FEATURE_LOWRANK |
                  FEATURE_TOKEN_ACT | FEATURE_BF16_ENCODER | FEATURE_GROUP_ACT)
# dtypes: f32, s8 codes (int8 layers), u8 (a low-bit weight's group table W_groups), packed low-bit codes
DT_F32, DT_S8, DT_U8, DT_PACKED = 0, 1, 2, 3
ALIGN = 64
GROUPS, GROUP_SIZE = "_groups", "_group_size"  # W + GROUPS: group table [rows, G, 2] of (bits, multiplier)


class WtkError(Exception):
    pass


def int8_layer_of(name):
    """NAME for NAME.weight and an LSTM's NAME.weight_ih_lK / weight_hh_lK (io/model_file.cc), else ''."""
    if name.endswith(".weight"):
        return name[:-7]
    m = re.match(r"^(.*)\.weight_[ih]h_l\d+$", name)
    return m.group(1) if m else ""


def lowbit_weight_of(name):
    """W for W_groups when W is a quantizable weight (NAME.weight, an LSTM's NAME.weight_ih_lK ...), else ''."""
    if not name.endswith(GROUPS):
        return ""
    w = name[:-len(GROUPS)]
    return w if int8_layer_of(w) else ""


def lowbit_code_max(bits):
    return (1 << (bits - 1)) - 1


def check_lowbit_groups(bits, mult, origin):
    """io/lowbit_pack.cc check_lowbit_groups: widths 2..8, 1 <= multiplier <= 127 / qmax(width)."""
    bits, mult = np.asarray(bits).reshape(-1), np.asarray(mult).reshape(-1)
    if bits.shape != mult.shape:
        raise WtkError(f"{origin}: low-bit group widths and multipliers differ in count")
    bad = np.flatnonzero((bits < 2) | (bits > 8))
    if len(bad):
        raise WtkError(f"{origin}: low-bit group {bad[0]} has width {bits[bad[0]]} (must be 2..8)")
    qmax = (1 << (bits.astype(np.int64) - 1)) - 1
    bad = np.flatnonzero((mult < 1) | (mult.astype(np.int64) * qmax > 127))
    if len(bad):
        i = bad[0]
        raise WtkError(f"{origin}: low-bit group {i} has multiplier {mult[i]} "
                       f"(must be 1..{127 // qmax[i]} at {bits[i]} bits)")


def _code_widths(bits, rows, cols, group):
    """Per code (row-major [rows, cols]) its group index and bit width."""
    G = (cols + group - 1) // group
    gi = (np.arange(rows, dtype=np.int64)[:, None] * G + np.arange(cols, dtype=np.int64)[None, :] // group).reshape(-1)
    return gi, np.asarray(bits, dtype=np.int64).reshape(-1)[gi]


def lowbit_packed_bytes(bits, rows, cols, group):
    """Bytes of the packed stream (io/lowbit_pack.cc lowbit_packed_bytes; 0 for inconsistent arguments)."""
    if rows <= 0 or cols <= 0 or group <= 0:
        return 0
    G = (cols + group - 1) // group
    bits = np.asarray(bits, dtype=np.int64).reshape(-1)
    if len(bits) != rows * G:
        return 0
    widths = np.minimum(group, cols - (np.arange(rows * G) % G) * group)
    return (int((bits * widths).sum()) + 7) // 8


def pack_lowbit(codes, bits, mult, rows, cols, group, origin="<memory>"):
    """s8 codes c = m_g * q [rows, cols] -> the packed stream (bytes), as io/lowbit_pack.cc pack_lowbit."""
    codes = np.asarray(codes).astype(np.int64).reshape(-1)
    if rows <= 0 or cols <= 0 or group <= 0 or len(codes) != rows * cols or \
            np.asarray(bits).size != rows * ((cols + group - 1) // group):
        raise WtkError(f"{origin}: low-bit codes or groups do not match {rows} x {cols} (group {group})")
    check_lowbit_groups(bits, mult, origin)
    gi, b = _code_widths(bits, rows, cols, group)
    m = np.asarray(mult, dtype=np.int64).reshape(-1)[gi]
    qmax = (1 << (b - 1)) - 1
    bad = np.flatnonzero((codes % m != 0) | (np.abs(codes) > m * qmax))
    if len(bad):
        raise WtkError(f"{origin}: low-bit code {codes[bad[0]]} is not on its group's grid")
    v = codes // m + qmax  # exact: m divides the code
    pos = np.concatenate(([0], np.cumsum(b)[:-1]))
    out = np.zeros(lowbit_packed_bytes(bits, rows, cols, group), dtype=np.uint8)
    for k in range(8):  # bit k of each code (codes narrower than k + 1 bits have none)
        sel = np.flatnonzero((b > k) & ((v >> k) & 1 == 1))
        p = pos[sel] + k
        np.bitwise_or.at(out, p >> 3, (1 << (p & 7)).astype(np.uint8))
    return out.tobytes()


def unpack_lowbit(packed, bits, mult, rows, cols, group, origin="<memory>"):
    """The s8 codes [rows, cols] (m_g * q) of a packed stream, with io/lowbit_pack.cc unpack_lowbit's checks: shape,
    group count, group parameters, byte count, every code within [0, 2 qmax], zero padding bits."""
    if rows <= 0 or cols <= 0 or group <= 0 or group > cols:
        raise WtkError(f"{origin}: bad low-bit shape ({rows} x {cols}, group {group})")
    G = (cols + group - 1) // group
    bits = np.asarray(bits).reshape(-1)
    mult = np.asarray(mult).reshape(-1)
    if len(bits) != rows * G:
        raise WtkError(f"{origin}: {len(bits)} low-bit groups for {rows} x {G} groups")
    check_lowbit_groups(bits, mult, origin)
    need = lowbit_packed_bytes(bits, rows, cols, group)
    if len(packed) != need:
        raise WtkError(f"{origin}: packed low-bit weights hold {len(packed)} bytes, their groups need {need}")
    gi, b = _code_widths(bits, rows, cols, group)
    m = mult.astype(np.int64)[gi]
    qmax = (1 << (b - 1)) - 1
    pos = np.concatenate(([0], np.cumsum(b)[:-1]))
    buf = np.concatenate((np.frombuffer(bytes(packed), dtype=np.uint8), np.zeros(2, np.uint8))).astype(np.int64)
    byte = pos >> 3  # a code of <= 8 bits at bit offset < 8 lies in two bytes
    v = ((buf[byte] | (buf[byte + 1] << 8)) >> (pos & 7)) & ((1 << b) - 1)
    bad = np.flatnonzero(v > 2 * qmax)
    if len(bad):
        i = bad[0]
        raise WtkError(f"{origin}: packed low-bit code {v[i]} is outside its {b[i]}-bit range "
                       f"(row {i // cols}, column {i % cols})")
    used = int(b.sum())
    if used % 8 and buf[need - 1] >> (used % 8):
        raise WtkError(f"{origin}: packed low-bit weights have non-zero padding bits")
    return ((v - qmax) * m).astype(np.int8).reshape(rows, cols)


class WtkFile:
    """A .wtk as (version, features, config text, {name: (dtype, shape, raw bytes)}), kept in file order.
    The one reader and writer of the format on the Python side (read_wtk, read_wtk_raw, write_wtk_raw, the
    quantized decoder of wtk_quant.py and the fuzz seeds all go through it)."""

    def __init__(self, version, features, config_text, entries, path="<memory>"):
        self.version, self.features, self.config_text, self.entries, self.path = (
            version, features, config_text, entries, path)
        self._unpacked = {}  # packed weight name -> its s8 codes

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
        try:
            text = data[pos:pos + ylen].decode()
        except UnicodeDecodeError:
            raise WtkError(f"{path}: the config text is not UTF-8") from None
        pos += ylen
        entries = {}
        packed = []
        for _ in range(count):
            need(pos, 4)
            (nl,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if nl == 0 or nl > 4096:
                raise WtkError(f"{path}: bad tensor name length")
            need(pos, nl + 8)
            try:
                name = data[pos:pos + nl].decode()
            except UnicodeDecodeError:
                raise WtkError(f"{path}: a tensor name is not UTF-8") from None
            pos += nl
            dtype, nd = struct.unpack_from("<II", data, pos)
            pos += 8
            if nd > 8 or dtype not in (DT_F32, DT_S8, DT_U8, DT_PACKED):
                raise WtkError(f"{path}: tensor {name!r} has a bad header")
            if dtype == DT_S8 and not features & FEATURE_INT8:
                raise WtkError(f"{path}: s8 tensor {name!r} in a file not marked int8")
            if dtype in (DT_U8, DT_PACKED) and not features & FEATURE_LOWBIT:
                raise WtkError(f"{path}: low-bit tensor {name!r} in a file not marked lowbit")
            need(pos, 8 * nd + 16)
            shape = struct.unpack_from("<" + "q" * nd, data, pos)
            pos += 8 * nd
            off, nb = struct.unpack_from("<QQ", data, pos)
            pos += 16
            if any(d < 0 or d > (1 << 32) for d in shape):
                raise WtkError(f"{path}: tensor {name!r} has a bad dimension")
            numel = int(np.prod(shape, dtype=object)) if nd else 1
            if numel > (1 << 40):
                raise WtkError(f"{path}: tensor {name!r} is too large")
            if dtype == DT_PACKED:  # 2..8 bits per code; the exact count is checked against the groups below
                ok = nd >= 2 and nb <= numel and nb * 4 >= numel
            else:
                ok = nb == numel * (4 if dtype == DT_F32 else 1)
            if not ok or off + nb > len(data):
                raise WtkError(f"{path}: tensor {name!r} has a bad size or offset")
            if dtype == DT_S8 and (not int8_layer_of(name) or nd < 2):
                raise WtkError(f"{path}: s8 tensor {name!r} is not the weight of an int8 layer")
            if dtype == DT_U8 and not lowbit_weight_of(name):
                raise WtkError(f"{path}: u8 tensor {name!r} is not the group table of a low-bit weight")
            if dtype == DT_PACKED:
                if not int8_layer_of(name):
                    raise WtkError(f"{path}: packed tensor {name!r} is not a layer weight")
                packed.append(name)
            if name.endswith((".lora_a", ".lora_b")) and not features & FEATURE_LOWRANK:
                raise WtkError(f"{path}: tensor {name!r} is a low-rank adapter, but the file does not declare the "
                               "low-rank feature (bit 4)")
            if name.endswith(".act_group") and not features & FEATURE_GROUP_ACT:
                raise WtkError(f"{path}: tensor {name!r} sets per-group activation ranges, but the file does not "
                               "declare the per-group feature (bit 7)")
            if name in entries:
                raise WtkError(f"{path}: tensor {name!r} appears twice")
            entries[name] = (dtype, tuple(shape), data[off:off + nb])
        f = WtkFile(version, features, text, entries, path)
        for name in packed:  # every packed weight unpacked once, with the engine's checks (io/model_file.cc)
            f._unpacked[name] = f._unpack(name)
        for name in entries:
            if lowbit_weight_of(name) and lowbit_weight_of(name) not in packed:
                raise WtkError(f"{path}: {name} has no packed weight beside it")
        return f

    def _unpack(self, name):
        """The s8 codes of packed weight `name`, after the checks of io/model_file.cc's reader."""
        layer = int8_layer_of(name)
        what = f"{self.path}: low-bit weight {name}"
        if not all(n in self.entries for n in (name + GROUPS, name + GROUP_SIZE, layer + ".weight_scale")):
            raise WtkError(f"{what} lacks its group table ({name}{GROUPS}), group size or {layer}.weight_scale")
        _, shape, raw = self.entries[name]
        rows = shape[0]
        cols = int(np.prod(shape[1:])) if rows else 0
        gs = self.array(name + GROUP_SIZE).reshape(-1)
        if gs.size != 1 or not (1 <= gs[0] <= cols) or gs[0] != np.floor(gs[0]):
            raise WtkError(f"{what} has a bad group size")
        group = int(gs[0])
        G = (cols + group - 1) // group
        g = self.array(name + GROUPS)
        if g.shape != (rows, G, 2):
            raise WtkError(f"{what}: its group table is {list(g.shape)}, expected [{rows}, {G}, 2]")
        sc = self.array(layer + ".weight_scale").reshape(-1)
        if sc.size != rows:
            raise WtkError(f"{what}: weight_scale has {sc.size} values")
        if not np.all(np.isfinite(sc) & (sc > 0)):
            raise WtkError(f"{what}: weight_scale holds a bad value")
        if not np.all((g >= 0) & (g <= 255) & (g == np.floor(g))):
            raise WtkError(f"{what}: its group table holds a value that is not a byte")
        g = g.astype(np.int64).reshape(-1, 2)
        return unpack_lowbit(raw, g[:, 0], g[:, 1], rows, cols, group, what).reshape(shape)

    def lowbit_groups(self, name):
        """(bits [rows, G], multipliers [rows, G], group size) of packed weight `name`."""
        g = self.array(name + GROUPS).astype(np.int64)
        return g[..., 0], g[..., 1], int(self.array(name + GROUP_SIZE).reshape(-1)[0])

    def is_packed(self, name):
        return name in self.entries and self.entries[name][0] == DT_PACKED

    def array(self, name):
        """float32 array; an s8 or packed weight comes back as codes * weight_scale (what the engine's reader hands
        out), a u8 group table as its byte values."""
        dtype, shape, raw = self.entries[name]
        if dtype == DT_F32:
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        if dtype == DT_U8:
            return np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.float32)
        codes = self.codes(name).astype(np.float32)
        sc = self.row_scales(name, shape[0])
        return (codes.reshape(shape[0], -1) * sc[:, None]).reshape(shape)

    def row_scales(self, name, rows):
        """The row scales of int8 weight `name` (io/model_file.cc int8_row_scales): its layer's weight_scale, or for
        an LSTM matrix (NAME.weight_ih_lK / weight_hh_lK) whose layer stores one scale per row of each matrix
        ([2 * layers * rows]: W_ih_l0, W_hh_l0, W_ih_l1, ...) that matrix's rows."""
        layer = int8_layer_of(name)
        sc = self.array(layer + ".weight_scale").reshape(-1)
        if sc.size == rows:
            return sc
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith(("weight_ih_l", "weight_hh_l")) and rows > 0 and sc.size % (2 * rows) == 0:
            k = int(leaf[11:])
            if k < sc.size // (2 * rows):
                m = 1 if leaf.startswith("weight_hh_l") else 0
                return sc[(2 * k + m) * rows:(2 * k + m + 1) * rows]
        raise WtkError(f"{self.path}: int8 layer {layer} has a weight_scale of {sc.size} values for its weight "
                       f"{name} of {rows} rows")

    def codes(self, name):
        """The s8 codes of an s8 weight, or of a packed low-bit weight (m_g * q, unpacked as the engine does)."""
        dtype, shape, raw = self.entries[name]
        if dtype == DT_PACKED:
            if name not in self._unpacked:
                self._unpacked[name] = self._unpack(name)
            return self._unpacked[name].copy()
        if dtype != DT_S8:
            raise WtkError(f"{self.path}: {name} is not stored as s8 or packed codes")
        return np.frombuffer(raw, dtype=np.int8).reshape(shape).copy()

    def set_f32(self, name, arr):
        a = np.asarray(arr, dtype="<f4")  # tobytes() is C order; a 0-d array keeps its empty shape
        self.entries[name] = (DT_F32, tuple(a.shape), a.tobytes())

    def set_s8(self, name, codes):
        a = np.asarray(codes, dtype=np.int8)
        self.entries[name] = (DT_S8, tuple(a.shape), a.tobytes())

    def set_lowbit(self, name, codes, groups, group_size):
        """A low-bit weight: s8 codes (m_g * q) stored packed by their group table groups [rows, G, 2] of
        (bits, multiplier), written as name_groups (u8) and name_group_size (f32 [1]); the layer's weight_scale is
        set apart."""
        c = np.asarray(codes, dtype=np.int8)
        g = np.asarray(groups)
        rows, cols = c.shape[0], c.size // max(c.shape[0], 1)
        flat = g.astype(np.int64).reshape(-1, 2)
        raw = pack_lowbit(c, flat[:, 0], flat[:, 1], rows, cols, int(group_size), f"{self.path}: {name}")
        self.entries[name] = (DT_PACKED, tuple(c.shape), raw)
        self.entries[name + GROUPS] = (DT_U8, tuple(g.shape), g.astype(np.uint8).tobytes())
        self.set_f32(name + GROUP_SIZE, np.array([group_size], np.float32))
        self._unpacked[name] = c.copy()

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
            if n.endswith(".act_dynamic"):
                feats |= FEATURE_TOKEN_ACT
            if n.endswith(".act_group"):
                feats |= FEATURE_GROUP_ACT
            if n.endswith("encoder.conv_bf16"):
                feats |= FEATURE_BF16_ENCODER
            if lowbit_weight_of(n):
                feats |= FEATURE_LOWBIT
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
    """-> (version, features, yaml text, [(name, np.ndarray)]) in file order; s8 and packed low-bit weights come as
    int8 codes (m_g * q for packed ones), group tables as uint8. Exits with a message on a bad file."""
    f = _read_or_exit(path)

    def value(name, dtype):
        if dtype in (DT_S8, DT_PACKED):
            return f.codes(name)
        if dtype == DT_U8:
            return f.array(name).astype(np.uint8)
        return f.array(name)

    tensors = [(name, value(name, dtype)) for name, (dtype, _, _) in f.entries.items()]
    return f.version, f.features, f.config_text, tensors


def write_wtk_raw(path, ytext, tensors):
    """Writes [(name, np.ndarray)]: int8 arrays as s8 codes, or packed when a uint8 group table W_groups and a
    W_group_size go with them (as read_wtk_raw gives them), the rest as float32; version 2 with the feature bits
    the tensors need (io/model_file.h), else version 1. Atomic (temporary file, then rename)."""
    f = WtkFile(1, 0, ytext, {})
    given = dict(tensors)
    lowbit = []
    for name, a in tensors:  # in the given order; packed weights are packed in place afterwards
        if a.dtype == np.int8:
            f.set_s8(name, a)
            if given.get(name + GROUPS) is not None and name + GROUP_SIZE in given:
                lowbit.append(name)
        elif a.dtype == np.uint8 and lowbit_weight_of(name):
            f.entries[name] = (DT_U8, tuple(a.shape), a.tobytes())
        else:
            f.set_f32(name, a)
    for name in lowbit:
        f.set_lowbit(name, given[name], given[name + GROUPS], int(np.asarray(given[name + GROUP_SIZE]).reshape(-1)[0]))
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
        if name.endswith("encoder.conv_bf16"):  # a run-time flag (bf16 encoder convs), no tensor of the reference
            continue
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
