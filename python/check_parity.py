#!/usr/bin/env python3
"""Check wavtok_ref against reference fixture directories.

    /usr/bin/python3 python/check_parity.py [--fixture DIR] [--encodec-fixture DIR | --skip-encodec]

Loads DIR/model.ckpt + DIR/config.yaml, encodes DIR/speech.input.wav and compares codes,
latents, features and decoded audio with the stored outputs. Prints the numbers and exits
non-zero if any check fails. Default bounds are this project's parity targets (codes 100%,
latents/features <= 1e-4, audio SNR >= 60 dB).

Also (unless --skip-encodec) loads the EnCodec fixture (model.th, causal) into
wavtok_ref.EncodecModel and checks emb / codes / latents / decoded audio at 1.5, 6 and 24 kbps
with the fixture README's tolerances (codes >= 99%, max abs err <= 1e-3, SNR >= 50 dB).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref import load_wavtokenizer, read_wav, read_checkpoint_state, EncodecModel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "fixtures"))
DEFAULT_FIXTURE = os.path.join(FIXTURES, "wavtokenizer-75")
DEFAULT_ENCODEC = os.path.join(FIXTURES, "encodec-24k")


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    err = ref - test.astype(np.float64)
    num = float((ref ** 2).sum())
    den = float((err ** 2).sum())
    if den == 0.0:
        return float("inf")
    return 10.0 * np.log10(num / den)


def compare(fixture: str, max_abs: float = 1e-4, min_code_match: float = 1.0, min_snr: float = 60.0,
            verbose: bool = True) -> bool:
    torch.set_num_threads(1)
    model = load_wavtokenizer(os.path.join(fixture, "model.ckpt"), os.path.join(fixture, "config.yaml"))
    audio, sr = read_wav(os.path.join(fixture, "speech.input.wav"))
    if sr != model.sample_rate:
        raise SystemExit(f"input at {sr} Hz, model at {model.sample_rate} Hz")
    x = torch.from_numpy(audio.astype(np.float32))[None]
    with torch.no_grad():
        features, codes, latents = model.encode(x)
        # full pipeline: our own codes -> codebook lookup -> backbone -> head
        decoded = model.decode(model.codes_to_features(codes), bandwidth_id=0)

    ok = True

    def report(name, good, text):
        nonlocal ok
        ok = ok and good
        if verbose:
            print(f"{'OK  ' if good else 'FAIL'} {name:10s} {text}")

    ref_codes = np.load(os.path.join(fixture, "speech.codes.npy"))
    c = codes.numpy()
    if c.shape != ref_codes.shape:
        report("codes", False, f"shape {c.shape} != {ref_codes.shape}")
    else:
        match = float((c == ref_codes).mean())
        report("codes", match >= min_code_match, f"shape {c.shape} match {100 * match:.3f}% (need >= {100 * min_code_match:g}%)")

    for name, got in (("latents", latents), ("features", features)):
        ref = np.load(os.path.join(fixture, f"speech.{name}.npy"))
        g = got.numpy()
        if g.shape != ref.shape:
            report(name, False, f"shape {g.shape} != {ref.shape}")
            continue
        err = float(np.abs(g - ref).max())
        report(name, err <= max_abs, f"shape {g.shape} max abs err {err:.3e} (need <= {max_abs:g}, ref max |x| {np.abs(ref).max():.3g})")

    ref_audio, _ = read_wav(os.path.join(fixture, "speech.decoded.wav"))
    y = decoded[0].numpy()
    if y.shape != ref_audio.shape:
        report("decoded", False, f"length {y.shape} != {ref_audio.shape}")
    else:
        s = snr_db(ref_audio, y)
        report("decoded", s >= min_snr, f"{len(y)} samples SNR {s:.1f} dB max abs err {np.abs(y - ref_audio).max():.3e} (need >= {min_snr:g} dB)")
    return ok


def compare_encodec(fixture: str, max_abs: float = 1e-3, min_code_match: float = 0.99, min_snr: float = 50.0,
                    verbose: bool = True) -> bool:
    torch.set_num_threads(1)
    model = EncodecModel.from_state_dict(read_checkpoint_state(os.path.join(fixture, "model.th")), causal=True)
    audio, _ = read_wav(os.path.join(fixture, "speech.input.wav"))
    x = torch.from_numpy(audio.astype(np.float32))[None]
    ok = True

    def report(name, good, text):
        nonlocal ok
        ok = ok and good
        if verbose:
            print(f"{'OK  ' if good else 'FAIL'} {name:16s} {text}")

    with torch.no_grad():
        emb = model.encoder(x[:, None]).numpy()
        ref = np.load(os.path.join(fixture, "speech.emb.npy"))
        err = float(np.abs(emb - ref).max()) if emb.shape == ref.shape else float("inf")
        report("emb", err <= max_abs, f"shape {emb.shape} max abs err {err:.3e}")
        for bw in ("1.5", "6", "24"):
            codes, _ = model.encode(x, float(bw))
            rc = np.load(os.path.join(fixture, f"speech.bw{bw}.codes.npy"))
            match = float((codes.numpy() == rc).mean()) if codes.shape == rc.shape else 0.0
            report(f"bw{bw} codes", match >= min_code_match, f"shape {tuple(codes.shape)} match {100 * match:.3f}%")
            lat = model.quantizer.decode(codes)
            rl = np.load(os.path.join(fixture, f"speech.bw{bw}.latents.npy"))
            err = float(np.abs(lat.numpy() - rl).max())
            report(f"bw{bw} latents", err <= max_abs, f"max abs err {err:.3e}")
            y = model.decoder(lat)[0, 0].numpy()
            ry, _ = read_wav(os.path.join(fixture, f"speech.bw{bw}.decoded.wav"))
            s = snr_db(ry, y) if y.shape == ry.shape else float("-inf")
            report(f"bw{bw} decoded", s >= min_snr, f"{len(y)} samples SNR {s:.1f} dB")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE, help="fixture directory (default %(default)s)")
    ap.add_argument("--max-abs", type=float, default=1e-4)
    ap.add_argument("--min-code-match", type=float, default=1.0)
    ap.add_argument("--min-snr", type=float, default=60.0)
    ap.add_argument("--encodec-fixture", default=DEFAULT_ENCODEC)
    ap.add_argument("--skip-encodec", action="store_true")
    args = ap.parse_args()
    print(f"fixture: {args.fixture}")
    ok = compare(args.fixture, args.max_abs, args.min_code_match, args.min_snr)
    if not args.skip_encodec:
        print(f"fixture: {args.encodec_fixture}")
        ok = compare_encodec(args.encodec_fixture) and ok
    print("PASS" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
