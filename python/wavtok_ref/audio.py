"""Minimal WAV I/O (PCM 16/24/32-bit and IEEE float32/64) and an FFT resampler, numpy only."""
from __future__ import annotations

import struct
from typing import Tuple

import numpy as np


def read_wav(path: str) -> Tuple[np.ndarray, int]:
    """Returns (samples float32 [T] for mono or [T, C], sample_rate). PCM is scaled to [-1, 1)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos = 12
    fmt = None
    payload = None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, ch, sr, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: subformat GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, sr, bits)
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    tag, ch, sr, bits = fmt
    if tag == 1 and bits == 16:
        x = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(payload, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    elif tag == 3 and bits == 64:
        x = np.frombuffer(payload, dtype="<f8").astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag} with {bits} bits")
    n = len(x) // ch
    x = x[: n * ch]
    if ch > 1:
        x = x.reshape(n, ch)
    return np.ascontiguousarray(x), sr


def write_wav(path: str, x: np.ndarray, sample_rate: int, sample_format: str = "float32"):
    """Write mono [T] or [T, C]. sample_format: 'float32' (IEEE, no clipping) or 'int16' (x * 32768 rounded, clipped)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    n, ch = x.shape
    if sample_format == "float32":
        payload = x.astype("<f4").tobytes()
        tag, bits = 3, 32
    elif sample_format == "int16":
        # x * 32768, rounded and clipped: the inverse of read_wav's scaling, so values
        # already on the 16-bit grid survive a write/read round trip unchanged
        q = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")
        payload = q.tobytes()
        tag, bits = 1, 16
    else:
        raise ValueError(sample_format)
    block = ch * bits // 8
    fmt = struct.pack("<HHIIHH", tag, ch, sample_rate, sample_rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag == 3:  # non-PCM formats carry a fact chunk
        chunks += b"fact" + struct.pack("<II", 4, n)
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of a mono signal by zero-padding / truncating its spectrum (float64 FFT).
    Output length round(len * sr_out / sr_in). Deterministic."""
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x.astype(np.float32)
    n = len(x)
    m = int(round(n * sr_out / sr_in))
    spec = np.fft.rfft(x)
    out = np.zeros(m // 2 + 1, dtype=np.complex128)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    if m < n and m % 2 == 0:
        out[-1] = out[-1].real  # the new Nyquist bin must be real
    y = np.fft.irfft(out, m) * (m / n)
    return y.astype(np.float32)
