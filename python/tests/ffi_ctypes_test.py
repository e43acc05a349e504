#!/usr/bin/env python3
"""libwavtok.so through Python's ctypes: the C API (capi/wavtok.h) as an FFI user sees it.

    /usr/bin/python3 python/tests/ffi_ctypes_test.py build/libwavtok.so

Streams the fixture clip through an encoder and a decoder session and checks them against the PyTorch reference
outputs in ../shared/fixtures (tolerances from its README): WavTokenizer codes (>= 99% equal), EnCodec codes at
6 kbps (>= 99%) and EnCodec's decoded audio (>= 50 dB SNR; its streaming decoder is exact). Also: errors come back
as return codes with a message, and the library exports nothing but the C API. Exit status 0 when all pass.
"""
import ctypes as C
import os
import subprocess
import sys
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "..", "shared", "fixtures")


class Params(C.Structure):
    _fields_ = [(n, C.c_int) for n in ("block_frames", "left_frames", "lookahead_frames", "n_q", "bandwidth_id",
                                       "crossfade_frames")]


def bind(lib):
    P = C.c_void_p
    sig = {
        "wavtok_last_error": (C.c_char_p, []),
        "wavtok_version": (C.c_char_p, []),
        "wavtok_set_num_threads": (C.c_int, [C.c_int]),
        "wavtok_model_load": (P, [C.c_char_p, C.c_char_p]),
        "wavtok_model_free": (None, [P]),
        "wavtok_model_sample_rate": (C.c_int, [P]),
        "wavtok_model_hop": (C.c_int, [P]),
        "wavtok_stream_preset": (C.c_int, [C.c_char_p, C.POINTER(Params)]),
        "wavtok_encoder_create": (P, [P, C.POINTER(Params)]),
        "wavtok_encoder_free": (None, [P]),
        "wavtok_encoder_push": (C.c_int64, [P, C.POINTER(C.c_float), C.c_size_t]),
        "wavtok_encoder_flush": (C.c_int64, [P]),
        "wavtok_encoder_read": (C.c_int64, [P, C.POINTER(C.c_int32), C.c_size_t]),
        "wavtok_encoder_n_q": (C.c_int, [P]),
        "wavtok_decoder_create": (P, [P, C.POINTER(Params)]),
        "wavtok_decoder_free": (None, [P]),
        "wavtok_decoder_push": (C.c_int64, [P, C.POINTER(C.c_int32), C.c_size_t, C.c_int]),
        "wavtok_decoder_flush": (C.c_int64, [P]),
        "wavtok_decoder_read": (C.c_int64, [P, C.POINTER(C.c_float), C.c_size_t]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


def read_wav(path):
    """16-bit PCM (the fixture inputs) with the wave module; 32-bit float WAV (the fixture outputs) by its chunks."""
    with open(path, "rb") as f:
        data = f.read()
    if data[20:22] == b"\x01\x00":
        with wave.open(path) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    at = 12
    while at + 8 <= len(data):
        cid, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if cid == b"data":
            return np.frombuffer(data[at + 8:at + 8 + size], dtype="<f4").copy()
        at += 8 + size + (size & 1)
    raise ValueError(path + ": no data chunk")


def stream(lib, model_path, pcm, n_q):
    """Encodes pcm in 20 ms chunks, decodes the codes as they come; returns codes [frames, n_q] and audio."""
    m = lib.wavtok_model_load(model_path.encode(), None)
    assert m, lib.wavtok_last_error()
    p = Params()
    assert lib.wavtok_stream_preset(b"default", C.byref(p)) == 0
    p.n_q = n_q
    enc, dec = lib.wavtok_encoder_create(m, C.byref(p)), lib.wavtok_decoder_create(m, C.byref(p))
    lib.wavtok_model_free(m)  # the sessions keep the model alive
    assert enc and dec, lib.wavtok_last_error()
    nq = lib.wavtok_encoder_n_q(enc)
    codes_buf = (C.c_int32 * (64 * nq))()
    pcm_buf = (C.c_float * (64 * 320))()
    codes, audio = [], []

    def drain():
        while True:
            got = lib.wavtok_encoder_read(enc, codes_buf, 64)
            if got <= 0:
                break
            frames = np.frombuffer(codes_buf, dtype=np.int32, count=got * nq).copy()
            codes.append(frames)
            assert lib.wavtok_decoder_push(dec, codes_buf, got, nq) >= 0, lib.wavtok_last_error()
        while True:
            got = lib.wavtok_decoder_read(dec, pcm_buf, len(pcm_buf))
            if got <= 0:
                break
            audio.append(np.frombuffer(pcm_buf, dtype=np.float32, count=got).copy())

    x = np.ascontiguousarray(pcm, dtype=np.float32)
    for at in range(0, len(x), 480):
        part = x[at:at + 480]
        assert lib.wavtok_encoder_push(enc, part.ctypes.data_as(C.POINTER(C.c_float)), len(part)) >= 0
        drain()
    assert lib.wavtok_encoder_flush(enc) >= 0
    drain()
    assert lib.wavtok_decoder_flush(dec) >= 0
    drain()
    lib.wavtok_encoder_free(enc)
    lib.wavtok_decoder_free(dec)
    return np.concatenate(codes).reshape(-1, nq), np.concatenate(audio)


def snr_db(ref, x):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - x).astype(np.float64) ** 2), 1e-30))


def main():
    so = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "libwavtok.so")
    lib = bind(C.CDLL(os.path.abspath(so)))
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    version = lib.wavtok_version().decode()
    check(len(version.split(".")) == 3, f"wavtok_version: {version}")
    check(lib.wavtok_set_num_threads(1) == 0 and lib.wavtok_set_num_threads(0) == -1, "wavtok_set_num_threads")

    wt = os.path.join(FIX, "wavtokenizer-75")
    pcm = read_wav(os.path.join(wt, "speech.input.wav"))
    codes, audio = stream(lib, os.path.join(wt, "model.ckpt"), pcm, 1)
    ref = np.load(os.path.join(wt, "speech.codes.npy"))[:, 0, :].T  # (n_q, 1, F) -> [F, n_q]
    agree = float(np.mean(codes == ref)) if codes.shape == ref.shape else 0.0
    check(agree >= 0.99, f"WavTokenizer codes vs the reference: {100 * agree:.2f}% equal ({codes.shape[0]} frames)")
    check(len(audio) == len(pcm) and bool(np.all(np.isfinite(audio))), f"WavTokenizer audio: {len(audio)} samples")

    ec = os.path.join(FIX, "encodec-24k")
    codes, audio = stream(lib, os.path.join(ec, "model.th"), pcm, 8)
    ref = np.load(os.path.join(ec, "speech.bw6.codes.npy"))[:, 0, :].T
    agree = float(np.mean(codes == ref)) if codes.shape == ref.shape else 0.0
    check(agree >= 0.99, f"EnCodec 6 kbps codes vs the reference: {100 * agree:.2f}% equal")
    want = read_wav(os.path.join(ec, "speech.bw6.decoded.wav"))
    snr = snr_db(want, audio) if len(want) == len(audio) else -1.0
    check(snr >= 50, f"EnCodec 6 kbps streamed audio vs the reference decode: {snr:.1f} dB SNR")

    check(lib.wavtok_model_load(b"/no/such/model.wtk", None) is None and
          b"/no/such/model.wtk" in lib.wavtok_last_error(), "a bad model path: NULL and a message naming it")
    exported = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True).stdout.split()
    names = [w for w in exported if w.startswith("wavtok") or w.startswith("_Z")]
    check(len(names) > 10 and all(n.startswith("wavtok_") for n in names),
          f"exports: {len(names)} symbols, all wavtok_* C functions")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
