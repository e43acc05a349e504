"""python/wtk_io.py, the one Python reader and writer of the .wtk model file (io/model_file.h), against the engine's
own writer: files written by `wavtok convert` and `wavtok quantize` (float, int8, int8 attention) read and written
back are the same bytes, through WtkFile and through read_wtk_raw / write_wtk_raw; read_wtk gives the float
tensors; damaged files are refused with the file named.

Run by CTest as python_wtk_io (WAVTOK_CLI = the wavtok binary)."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from wtk_io import WtkError, WtkFile, read_wtk, read_wtk_raw, write_wtk_raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "..", "shared", "fixtures", "wavtokenizer-75")
CLI = os.environ.get("WAVTOK_CLI", os.path.join(ROOT, "build", "wavtok"))
RECIPES = {"int8": "rules:\n  - match: 'pwconv'\n  - match: '^head\\.out$'\n",
           "int8-attention": "attention: int8\nrules:\n  - match: 'pwconv'\n  - match: 'pos_net'\n"}


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
    return d, out


def header(path):
    return struct.unpack_from("<IIQQ", path.read_bytes(), 8)  # version, features, config bytes, tensors


def test_engine_files_round_trip_byte_for_byte(files):
    d, out = files
    assert [header(out[k])[:2] for k in ("float", "int8", "int8-attention")] == [(1, 0), (2, 1), (2, 1 | 8)]
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
    refused("lowbit.wtk", good[:12] + struct.pack("<I", 1 | 4) + good[16:], "unknown features")
    refused("unmarked.wtk", good[:12] + struct.pack("<I", 16) + good[16:], "not marked int8")
    refused("huge.wtk", good[:24] + struct.pack("<Q", 1 << 40) + good[32:], "bad header sizes")
