#!/usr/bin/python3
"""Seed corpora for the libFuzzer targets (*_fuzz.cc), generated from ../shared/fixtures into a build folder.

usage: fuzz_seeds.py OUT_DIR WAVTOK_BINARY

Writes OUT_DIR/<target>/* for every target. Nothing is written into the source tree. The wavtok binary converts the
fixture checkpoint into a .wtk and makes real token files; sox (if installed) adds FLAC/Ogg/AIFF seeds.
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
import zipfile
from collections import OrderedDict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "..", "shared", "fixtures")
WT = os.path.join(FIX, "wavtokenizer-75")


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def torch_seeds(out):
    import torch

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    objs = {
        "plain": OrderedDict(w=torch.ones(3, 4), b=torch.zeros(4)),
        "lightning": {
            "epoch": 3,
            "global_step": 1200,
            "pytorch-lightning_version": "1.8.6",
            "state_dict": OrderedDict([("backbone.embed.weight", torch.randn(8, 4, 3)),
                                       ("backbone.embed.bias", torch.randn(8))]),
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(8)}}, "param_groups": [{"lr": 2e-4}]}],
            "hyper_parameters": {"sample_rate": 24000, "bandwidths": [6.6, 6.6], "big": 2**70, "none": None},
        },
        "shared": {"a": base, "t": base.t(), "row": base[1], "col": base[:, 2], "step": base[::2, ::3]},
        "dtypes": {
            "f16": torch.ones(5, dtype=torch.float16), "bf16": torch.ones(5, dtype=torch.bfloat16),
            "f64": torch.ones(3, dtype=torch.float64), "i64": torch.arange(6), "i32": torch.arange(6, dtype=torch.int32),
            "i8": torch.arange(6, dtype=torch.int8), "u8": torch.arange(6, dtype=torch.uint8),
            "bool": torch.tensor([True, False]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
        },
        "nested": [[1, 2.5, "x", (True, None)], {"k": [torch.ones(2)]}, {1: "int key", 2.5: "float key"}],
    }
    for name, obj in objs.items():
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "archive.pt")
            torch.save(obj, p)
            raw = open(p, "rb").read()
            put(out, "torch_checkpoint_fuzz", name + ".pt", raw)
            with zipfile.ZipFile(p) as z:
                pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(pkl)
            put(out, "torch_pickle_fuzz", name + ".pkl", data)
            put(out, "torch_checkpoint_fuzz", name + ".pkl", data)  # wrapped into a zip by the target
            if name == "plain":
                # Regression seed: the central directory claims a 4 GB storage entry (the reader once reserved it).
                d = bytearray(raw)
                i = d.find(b"PK\x01\x02")
                while i >= 0:
                    n = struct.unpack_from("<H", d, i + 28)[0]
                    if bytes(d[i + 46:i + 46 + n]).endswith(b"/data/0"):
                        struct.pack_into("<I", d, i + 24, 0xFFFFFFF0)
                    i = d.find(b"PK\x01\x02", i + 4)
                put(out, "torch_checkpoint_fuzz", "claims_4g_entry.pt", bytes(d))
    # The fixture's real pickle (Lightning checkpoint with optimizer states and hyper-parameters).
    with zipfile.ZipFile(os.path.join(WT, "model.ckpt")) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        put(out, "torch_pickle_fuzz", "fixture.pkl", z.read(pkl))


def wtk(config_yaml, tensors):
    """A .wtk file (io/model_file.h) holding `tensors` ({name: float32 array})."""
    from wtk_io import WtkFile  # python/ (this script's folder) is first on sys.path; imported here, as torch is

    f = WtkFile(1, 0, config_yaml, {})
    for name, a in tensors.items():
        f.set_f32(name, a)
    return f.tobytes()


def wtk_config(path):
    from wtk_io import WtkFile

    return WtkFile.read(path).config_text


def model_and_config_seeds(out, wavtok, tmp):
    big = os.path.join(tmp, "fixture.wtk")
    subprocess.run([wavtok, "convert", os.path.join(WT, "model.ckpt"), "--config", os.path.join(WT, "config.yaml"),
                    "-o", big, "-q"], check=True)
    cfg = wtk_config(big)
    put(out, "model_file_fuzz", "fixture.wtk", open(big, "rb").read())
    rng = np.random.default_rng(1)
    put(out, "model_file_fuzz", "small.wtk", wtk(cfg, {"a.weight": rng.standard_normal((4, 3)).astype(np.float32),
                                                       "b": np.zeros(5, np.float32)}))
    put(out, "model_file_fuzz", "empty.wtk", wtk(cfg, {}))
    put(out, "config_fuzz", "wtk.yaml", cfg.encode())
    put(out, "config_fuzz", "release.yaml", open(os.path.join(WT, "config.yaml"), "rb").read())
    encodec = cfg.replace("arch: wavtokenizer", "arch: encodec")
    put(out, "config_fuzz", "encodec.yaml", encodec.encode())
    put(out, "config_fuzz", "flow.yaml", b"{arch: wavtokenizer, sample_rate: 24000, encoder: {ratios: [8, 5, 4, 2]},"
                                          b" quantizer: {n_q: 1, bins: 512, dim: 64}, head: {n_fft: 1280, hop_length: 320}}")


def token_seeds(out, wavtok, tmp):
    wav = os.path.join(WT, "speech.input.wav")
    for ext in ("wtt", "npy", "txt"):
        p = os.path.join(tmp, "t." + ext)
        subprocess.run([wavtok, "encode", wav, "-m", os.path.join(WT, "model.ckpt"), "-o", p, "-q"], check=True)
        put(out, "token_file_fuzz", "speech." + ext, open(p, "rb").read())
    full = open(os.path.join(tmp, "t.wtt"), "rb").read()
    # The same header with 5 frames: decodable by the target, so decode runs too.
    hdr = bytearray(full[:48])
    struct.pack_into("<Q", hdr, 40, 5)
    put(out, "token_file_fuzz", "short.wtt", bytes(hdr) + full[48:48 + 5 * 4])
    put(out, "token_file_fuzz", "short.txt", b"1 2 3 4 5\n")
    put(out, "token_file_fuzz", "frames.txt", b"1 2\n3 4\n\n7 4095\r\n5\n")  # frame lines, the pipe format
    buf = io.BytesIO()
    np.save(buf, np.array([[[7, 8, 9]]], dtype=np.int64))
    put(out, "token_file_fuzz", "short.npy", buf.getvalue())


def npy_seeds(out):
    arrays = {
        "f4": np.arange(12, dtype="<f4").reshape(3, 4), "f8": np.linspace(0, 1, 5), "f2": np.ones(4, "<f2"),
        "i8": np.arange(6, dtype="<i8").reshape(1, 2, 3), "i4": np.arange(4, dtype="<i4"), "u1": np.arange(3, dtype="u1"),
        "i2": np.arange(3, dtype="<i2"), "b1": np.array([True, False]), "scalar": np.array(3.5, "<f4"),
        "empty": np.zeros((0, 4), "<f4"), "fortran": np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
    }
    for name, a in arrays.items():
        buf = io.BytesIO()
        np.save(buf, a)
        put(out, "npy_fuzz", name + ".npy", buf.getvalue())
    for version in ((2, 0), (3, 0)):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.arange(4, dtype="<f4"), version=version)
        put(out, "npy_fuzz", "v%d.npy" % version[0], buf.getvalue())
    put(out, "npy_fuzz", "codes.npy", open(os.path.join(WT, "speech.codes.npy"), "rb").read())


def wav_pcm(rate, channels, width, frames):
    t = np.arange(frames) / rate
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    x = np.repeat(x[:, None], channels, axis=1)
    if width == 1:
        pcm = ((x + 1) * 127.5).astype(np.uint8).tobytes()
    elif width == 2:
        pcm = (x * 32767).astype("<i2").tobytes()
    else:
        pcm = (x * 2**31 * 0.99).astype("<i4").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def wav_float(rate, channels, frames):
    x = (0.3 * np.sin(np.arange(frames * channels) * 0.05)).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(x)) + x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def audio_seeds(out, tmp):
    put(out, "encode_fuzz", "pcm16.wav", wav_pcm(24000, 1, 2, 960))
    put(out, "encode_fuzz", "pcm8_8k.wav", wav_pcm(8000, 1, 1, 400))
    put(out, "encode_fuzz", "pcm32_stereo.wav", wav_pcm(48000, 2, 4, 600))
    put(out, "encode_fuzz", "pcm16_8ch.wav", wav_pcm(16000, 8, 2, 200))
    put(out, "encode_fuzz", "float.wav", wav_float(24000, 1, 700))
    put(out, "encode_fuzz", "float_44k.wav", wav_float(44100, 2, 500))
    # Regression seed: finite samples near FLT_MAX that resampling once overflowed to Inf.
    loud = bytearray(wav_float(44100, 1, 500))
    for i in range(44, len(loud), 8):
        loud[i:i + 4] = struct.pack("<f", 3.0e38)
    put(out, "encode_fuzz", "near_flt_max_44k.wav", bytes(loud))
    src = os.path.join(tmp, "src.wav")
    open(src, "wb").write(wav_pcm(24000, 1, 2, 2400))
    if shutil.which("sox"):
        for ext in ("flac", "ogg", "aiff", "au"):
            dst = os.path.join(tmp, "sox." + ext)
            if subprocess.run(["sox", src, dst], capture_output=True).returncode == 0:
                put(out, "encode_fuzz", "sox." + ext, open(dst, "rb").read())
        flac = os.path.join(tmp, "sox.flac")
        if os.path.exists(flac):
            # Regression seed: STREAMINFO claims 2^31-1 samples in a 1 KB file (the reader once reserved 8 GB).
            d = bytearray(open(flac, "rb").read())
            v = int.from_bytes(d[18:26], "big")
            d[18:26] = ((v & ~((1 << 36) - 1)) | (2**31 - 1)).to_bytes(8, "big")
            put(out, "encode_fuzz", "claims_2g_frames.flac", bytes(d))


def main():
    out, wavtok = sys.argv[1], os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        torch_seeds(out)
        model_and_config_seeds(out, wavtok, tmp)
        token_seeds(out, wavtok, tmp)
        npy_seeds(out)
        audio_seeds(out, tmp)
    for t in sorted(os.listdir(out)):
        print("seeds: %-24s %3d files" % (t, len(os.listdir(os.path.join(out, t)))))


if __name__ == "__main__":
    main()
