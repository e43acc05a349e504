#!/usr/bin/env python3
"""Generates a synthetic test corpus for `wavtok batch` / `python3 -m wavtok.dask`: many short clips in nested
folders, of several rates, channel counts and sample formats, plus bad files of the kinds a real corpus holds.

    python3 python/make_corpus.py OUTDIR [--files 500] [--min-s 2] [--max-s 8] [--seed 1]

Good clips: harmonic tones with vibrato and amplitude envelopes plus noise (a rough stand-in for voiced speech),
16 / 22.05 / 24 / 44.1 / 48 kHz, mono or stereo, 16-bit PCM or float32 WAV. About 3 % of the files are bad:
a corrupt header, an empty file, a float WAV holding NaN, text named .wav; and about 1 % are truncated WAVs (the
header promises more samples than the file holds; tokenized with a warning, refused with --strict). The list of
bad and truncated files goes to OUTDIR/EXPECTED.tsv (path, kind). Deterministic for a given seed.
"""
import argparse
import os
import struct
import sys

import numpy as np


def wav_bytes(x: np.ndarray, rate: int, float32: bool) -> bytes:
    """A canonical RIFF/WAVE file: x is (frames, channels) in [-1, 1]."""
    frames, ch = x.shape
    if float32:
        data = x.astype("<f4").tobytes()
        fmt_tag, bits = 3, 32
    else:
        data = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
        fmt_tag, bits = 1, 16
    block = ch * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, ch, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def clip(rng: np.random.Generator, seconds: float, rate: int, channels: int) -> np.ndarray:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 260) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6.28))) ** 2
    x = 0.12 * voiced * env + 0.01 * rng.standard_normal(n)
    out = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return np.clip(out, -1, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--files", type=int, default=500, help="number of files, bad ones included (default 500)")
    ap.add_argument("--min-s", type=float, default=2.0)
    ap.add_argument("--max-s", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    rates = [16000, 22050, 24000, 44100, 48000]
    bad_kinds = ["corrupt_header", "empty", "nan", "not_audio"]
    expected = []
    total_s = 0.0
    for i in range(a.files):
        folder = os.path.join(a.outdir, f"speaker{i % 20:02d}", f"session{(i // 20) % 5}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"utt{i:05d}.wav")
        if i % 33 == 7:  # about 3 %: bad
            kind = bad_kinds[(i // 33) % len(bad_kinds)]
            if kind == "corrupt_header":
                data = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(rng.integers(0, 256, 40, dtype=np.uint8))
            elif kind == "empty":
                data = b""
            elif kind == "nan":
                x = clip(rng, 1.0, 16000, 1)
                x[len(x) // 2, 0] = np.nan
                data = wav_bytes(x, 16000, True)
            else:
                data = b"utterance transcript, not audio\n" * 20
            with open(path, "wb") as f:
                f.write(data)
            expected.append((path, kind))
            continue
        rate = rates[i % len(rates)]
        seconds = float(rng.uniform(a.min_s, a.max_s))
        x = clip(rng, seconds, rate, 1 + (i % 7 == 0))
        data = wav_bytes(x, rate, float32=i % 3 == 0)
        if i % 97 == 50:  # about 1 %: truncated (the last third of the data missing)
            data = data[: len(data) - (len(data) - 44) // 3]
            expected.append((path, "truncated"))
            seconds *= 2 / 3
        with open(path, "wb") as f:
            f.write(data)
        total_s += seconds
    with open(os.path.join(a.outdir, "EXPECTED.tsv"), "w") as f:
        for p, k in expected:
            f.write(f"{p}\t{k}\n")
    print(f"{a.files} files in {a.outdir}: {len([e for e in expected if e[1] != 'truncated'])} bad, "
          f"{len([e for e in expected if e[1] == 'truncated'])} truncated, {total_s / 3600:.3f} h of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
