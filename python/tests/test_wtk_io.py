"""python/wtk_io.py, the one Python reader and writer of the .wtk model file (io/model_file.h), against the engine's
own writer: files written by `wavtok convert` and `wavtok quantize` (float, int8, int8 attention) read and written
back are the same bytes, through WtkFile and through read_wtk_raw / write_wtk_raw, packed low-bit files of the
configs/quant/w4-slim.yaml recipe and per-token encoder convs (act_dynamic, feature bit 5) included; read_wtk gives the float tensors; the packed codes equal a bit-by-bit
reading of the documented layout; damaged files and hostile packed streams are refused with the file named, by this
reader and by the engine.

Run by CTest as python_wtk_io (WAVTOK_CLI = the wavtok binary)."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from wtk_io import (DT_PACKED, DT_U8, WtkError, WtkFile, lowbit_code_max, pack_lowbit, read_wtk,  # noqa: E402
                    read_wtk_raw, write_wtk_raw)

ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "wavtokenizer-75")
CLI = os.environ.get("WAVTOK_CLI", os.path.join(ROOT, "build", "wavtok"))
RECIPES = {"int8": "rules:\n  - match: 'pwconv'\n  - match: '^head\\.out$'\n",
           "int8-attention": "attention: int8\nrules:\n  - match: 'pwconv'\n  - match: 'pos_net'\n",
           "token": "rules:\n  - match: 'encoder\\.model\\.\\d+\\..*conv\\.conv$'\n    act_range: token\n",
           "bf16": "encoder_convs: bf16\nrules:\n  - match: '^head\\.out$'\n"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("wtk_io")
    ckpt = [os.path.join(FIX, "model.ckpt"), "--config", os.path.join(FIX, "config.yaml")]
    out = {"float": d / "float.wtk"}
    subprocess.run([CLI, "convert", *ckpt, "-o", str(out["float"]), "-q"], check=True)
    calib = d / "calib"
    calib.mkdir()
    os.symlink(os.path.abspath(os.path.join(FIX, "speech.input.wav")), calib / "speech.wav")
    for name, text in RECIPES.items():
        (d / f"{name}.yaml").write_text(text)
        out[name] = d / f"{name}.wtk"
        subprocess.run([CLI, "quantize", *ckpt, "--calib", str(calib), "--recipe", str(d / f"{name}.yaml"),
                        "-o", str(out[name]), "-q", "-t", "1"], check=True)
    # packed low-bit weights: the shipped W4 recipe (W4A8 decoder, weight-only LSTM and model.12)
    out["w4-slim"] = d / "w4-slim.wtk"
    subprocess.run([CLI, "quantize", *ckpt, "--calib", str(calib), "--recipe",
                    os.path.join(ROOT, "configs", "quant", "w4-slim.yaml"), "-o", str(out["w4-slim"]), "-q", "-t", "1"],
                   check=True)
    return d, out


def header(path):
    return struct.unpack_from("<IIQQ", path.read_bytes(), 8)  # version, features, config bytes, tensors


def test_engine_files_round_trip_byte_for_byte(files):
    d, out = files
    assert [header(out[k])[:2] for k in ("float", "int8", "int8-attention", "w4-slim", "token", "bf16")] == [
        (1, 0), (2, 1), (2, 1 | 8), (2, 1 | 4), (2, 1 | 32), (2, 1 | 64)]
    # token: per-token conv activations (act_dynamic); bf16: encoder convs in bf16 (ENCODER.conv_bf16)
    for name, path in out.items():
        f = WtkFile.read(str(path))
        assert f.tobytes() == path.read_bytes(), name
        f.write(str(d / "again.wtk"))
        assert (d / "again.wtk").read_bytes() == path.read_bytes(), name
        version, features, text, tensors = read_wtk_raw(str(path))
        assert (version, features, text) == (f.version, f.features, f.config_text)
        assert [n for n, _ in tensors] == list(f.entries)
        write_wtk_raw(str(d / "raw.wtk"), text, tensors)
        assert (d / "raw.wtk").read_bytes() == path.read_bytes(), name
    assert not any(p.name.endswith(".tmp") for p in d.iterdir())


def test_s8_codes_and_their_float_values(files):
    f = WtkFile.read(str(files[1]["int8"]))
    s8 = [n for n, (dt, _, _) in f.entries.items() if dt == 1]
    assert s8 and all(n.endswith(".weight") for n in s8)
    raw = dict(read_wtk_raw(str(files[1]["int8"]))[3])
    for n in s8:
        codes = raw[n]
        assert codes.dtype == np.int8 and np.abs(codes.astype(int)).max() <= 127
        scale = raw[n[:-len(".weight")] + ".weight_scale"]
        want = codes.reshape(codes.shape[0], -1).astype(np.float32) * scale[:, None]
        assert np.array_equal(f.array(n), want.reshape(codes.shape)), n


def test_read_wtk_gives_the_float_tensors(files):
    cfg, tensors = read_wtk(str(files[1]["float"]))
    f = WtkFile.read(str(files[1]["float"]))
    assert cfg["arch"] == "wavtokenizer" and list(tensors) == list(f.entries)
    for n, a in tensors.items():
        dt, shape, raw = f.entries[n]
        assert a.dtype == np.float32 and a.shape == shape and a.tobytes() == raw
    with pytest.raises(SystemExit, match="version 2 not supported"):
        read_wtk(str(files[1]["int8"]))


def test_scalars_keep_their_shape(tmp_path):
    tensors = [("a.weight", np.arange(12, dtype=np.float32).reshape(4, 3)), ("s", np.array(2.5, np.float32))]
    write_wtk_raw(str(tmp_path / "m.wtk"), "arch: x\n", tensors)
    _, _, text, back = read_wtk_raw(str(tmp_path / "m.wtk"))
    assert text == "arch: x\n" and [n for n, _ in back] == ["a.weight", "s"]
    assert back[1][1].shape == () and float(back[1][1]) == 2.5 and np.array_equal(back[0][1], tensors[0][1])


def test_damaged_files_refused(files):
    d, out = files
    good = out["int8"].read_bytes()

    def refused(name, data, match):
        p = d / name
        p.write_bytes(data)
        with pytest.raises(WtkError, match=match) as e:
            WtkFile.read(str(p))
        assert str(p) in str(e.value)
        with pytest.raises(SystemExit, match=match):
            read_wtk_raw(str(p))

    refused("magic.wtk", b"NOTAWTK!" + good[8:], "not a wavtok model file")
    refused("short.wtk", good[:20], "truncated")
    refused("cut.wtk", good[:len(good) // 2], "bad size or offset|truncated")
    refused("v3.wtk", good[:8] + struct.pack("<I", 3) + good[12:], "version 3")
    # bits 5-7 are known (token-act, bf16 encoder, group-act)
    refused("bit8.wtk", good[:12] + struct.pack("<I", 1 | 256) + good[16:], "unknown features")
    refused("unmarked.wtk", good[:12] + struct.pack("<I", 16) + good[16:], "not marked int8")
    refused("huge.wtk", good[:24] + struct.pack("<Q", 1 << 40) + good[32:], "bad header sizes")
    # per-group activation ranges (NAME.act_group) in a file whose header lacks bit 7
    grp = tensor_file_bytes(d, [("enc.conv.act_quant", np.array([1.0, 0.0], np.float32)),
                                ("enc.conv.act_dynamic", np.array([1.0], np.float32)),
                                ("enc.conv.act_group", np.array([8.0], np.float32))])
    assert struct.unpack_from("<I", grp, 12)[0] & 128
    refused("group.wtk", grp[:12] + struct.pack("<I", struct.unpack_from("<I", grp, 12)[0] & ~128) + grp[16:],
            "per-group feature")


def tensor_file_bytes(d, tensors):
    """The bytes of a .wtk holding these float32 tensors, as python/wtk_io.py writes it (features from the names)."""
    f = WtkFile(1, 0, "arch: x\n", {}, str(d / "t.wtk"))
    for n, a in tensors:
        f.set_f32(n, a)
    return f.tobytes()


def read_bits_lsb_first(raw, bits, mult, rows, cols, group):
    """The documented layout (io/lowbit_pack.h), read one bit at a time: q + qmax in b_g bits, LSB first, row after
    row and group after group."""
    G = (cols + group - 1) // group
    out, pos = np.zeros((rows, cols), np.int64), 0
    for o in range(rows):
        for j in range(cols):
            b, m = int(bits[o, j // group]), int(mult[o, j // group])
            v = sum(((raw[(pos + k) >> 3] >> ((pos + k) & 7)) & 1) << k for k in range(b))
            pos += b
            out[o, j] = (v - lowbit_code_max(b)) * m
    assert (pos + 7) // 8 == len(raw) and G == bits.shape[1]
    return out


def test_packed_weights(files):
    f = WtkFile.read(str(files[1]["w4-slim"]))
    packed = [n for n, (dt, _, _) in f.entries.items() if dt == DT_PACKED]
    # the W4A8 decoder layers, the weight-only LSTM's matrices and model.12
    assert any("pwconv1" in n for n in packed) and any(".lstm.weight_hh_l" in n for n in packed), packed
    assert all(f.entries[n + "_groups"][0] == DT_U8 for n in packed)
    for n in packed:
        bits, mult, group = f.lowbit_groups(n)
        codes = f.codes(n)
        rows = codes.shape[0]
        cols = codes.size // rows
        raw = f.entries[n][2]
        if n.endswith("pwconv2.weight") or n.endswith("proj_out.weight"):  # a few in full, bit by bit
            assert np.array_equal(read_bits_lsb_first(raw, bits, mult, rows, cols, group),
                                  codes.reshape(rows, cols)), n
        assert pack_lowbit(codes, bits, mult, rows, cols, group) == raw, n  # and back to the same bytes
        sc = f.array(n.rsplit(".", 1)[0] + ".weight_scale")
        assert np.array_equal(f.array(n), (codes.reshape(rows, -1).astype(np.float32) * sc[:, None]).reshape(codes.shape))
    _, _, _, tensors = read_wtk_raw(str(files[1]["w4-slim"]))
    t = dict(tensors)
    assert t[packed[0]].dtype == np.int8 and t[packed[0] + "_groups"].dtype == np.uint8


def test_hostile_packed_streams_refused(files):
    d, out = files
    good = WtkFile.read(str(out["w4-slim"]))
    name = next(n for n, (dt, _, _) in good.entries.items() if dt == DT_PACKED and n.endswith("pwconv2.weight"))
    bits, mult, group = good.lowbit_groups(name)

    def with_entry(key, entry):
        f = WtkFile.read(str(out["w4-slim"]))
        if entry is None:
            del f.entries[key]
        else:
            f.entries[key] = entry
        return f.tobytes()

    dt, shape, raw = good.entries[name]
    gdt, gshape, graw = good.entries[name + "_groups"]
    g = np.frombuffer(graw, np.uint8).reshape(gshape).copy()
    # a code value above 2 qmax: the first code of a group narrower than 8 bits set to all ones (2^b - 1)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    widths = bits[:, np.arange(cols) // group].reshape(-1)
    starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
    i = int(np.flatnonzero(widths < 8)[0])
    hi = bytearray(raw)
    for k in range(int(widths[i])):
        p = int(starts[i]) + k
        hi[p >> 3] |= 1 << (p & 7)
    wide = g.copy()
    wide[0, 0, 0] = 9
    many = g.copy()
    many[0, 0, 1] = 128  # a multiplier beyond 127 / qmax
    cases = {
        "code.wtk": (with_entry(name, (dt, shape, bytes(hi))), "outside its"),
        "short.wtk": (with_entry(name, (dt, shape, raw[:-1])), "bytes, their groups need"),
        "width.wtk": (with_entry(name + "_groups", (gdt, gshape, wide.tobytes())), "width 9"),
        "mult.wtk": (with_entry(name + "_groups", (gdt, gshape, many.tobytes())), "multiplier 128"),
        "nogroups.wtk": (with_entry(name + "_groups", None), "lacks its group table"),
        "nosize.wtk": (with_entry(name + "_group_size", None), "lacks its group table"),
    }
    used = int(widths.sum())
    if used % 8:  # a padding bit set
        pad = bytearray(raw)
        pad[-1] |= 0x80
        cases["pad.wtk"] = (with_entry(name, (dt, shape, bytes(pad))), "non-zero padding bits")
    data = out["w4-slim"].read_bytes()
    cases["unmarked.wtk"] = (data[:12] + struct.pack("<I", 1) + data[16:], "not marked lowbit")
    for fname, (blob, match) in cases.items():
        p = d / fname
        p.write_bytes(blob)
        with pytest.raises(WtkError, match=match) as e:
            WtkFile.read(str(p))
        assert str(p) in str(e.value), fname
        r = subprocess.run([CLI, "info", "-m", str(p)], capture_output=True, text=True)
        assert r.returncode == 1 and str(p) in r.stderr, (fname, r.stderr)  # the engine refuses it too
