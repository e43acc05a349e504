#!/usr/bin/env python3
"""Build a small random-weight WavTokenizer and write reference outputs for it.

    /usr/bin/python3 python/make_reference_fixtures.py --out DIR [--config 40|75] [--seed N]

Writes in DIR the same file set as ../shared/fixtures/wavtokenizer-75:
  model.ckpt, config.yaml            Lightning-style checkpoint + release-layout config
  speech.input.wav                   4.0 s espeak-ng speech, 24 kHz mono 16-bit PCM
  speech.latents.npy                 float32 (1, 64, F)  encoder output
  speech.features.npy                float32 (1, 64, F)  codebook vectors of the codes
  speech.codes.npy                   int64 (1, 1, F)     layout (n_q, batch, frames)
  speech.decoded.wav                 float32 WAV, codes -> features -> backbone (bandwidth 0) -> iSTFT

Configs: 75 = ratios [8, 5, 4, 2] (hop 320, n_fft 1280, 300 frames for 4 s),
         40 = ratios [6, 5, 5, 4] (hop 600, n_fft 2400, 160 frames for 4 s),
         75c = 75's ratios as a causal model (causal: true, zero padding, attention_window [16, 0],
               pos_net_norm affine, n_fft 640).
Sizes as the upstream fixture: n_filters 8, dimension 64, codebook 512, backbone 128/384/4, 4 AdaLN embeddings.

Weights: PyTorch/Vocos default initialisers from a fixed seed. The encoder's last conv bias is
shifted so the latents of the training speech are centred; the codebook is k-means initialised
(200 iterations) on about 16 s of espeak-ng speech, then every entry is moved by Gaussian noise
of half the latents' per-channel spread, so nearest-code decisions are well separated (the
smallest best/second-best squared-distance gap on the test clip is printed and checked to be
>= 3e-5 of the latent's squared norm). Everything is float32, one thread, eval mode, no grad,
and deterministic for a given espeak-ng version.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref import WavTokenizer, read_wav, write_wav, resample  # noqa: E402

SR = 24000
CLIP_SECONDS = 4.0
MIN_REL_GAP = 3e-5

CONFIGS = {
    "75": dict(ratios=[8, 5, 4, 2], n_fft=1280, hop_length=320),
    "40": dict(ratios=[6, 5, 5, 4], n_fft=2400, hop_length=600),
    # a causal model (docs/STREAMING.md "Causal models"): left-padded convolutions with zeros, attention over
    # the past 16 frames, per-channel affines, and an iSTFT of n_fft = 2 * hop (one frame of lookahead)
    "75c": dict(ratios=[8, 5, 4, 2], n_fft=640, hop_length=320, causal=True, pad_mode="constant",
                pos_net_norm="affine", attention_window=[16, 0]),
}
SMALL = dict(n_filters=8, dimension=64, codebook_size=512, n_q=1, kmeans_iters=200,
             backbone_dim=128, intermediate_dim=384, num_layers=4, adanorm_num_embeddings=4,
             bandwidths=[6.6, 6.6, 6.6, 6.6])

TRAIN_TEXT = [
    ("en-us", "Every morning the old ferry crossed the grey river, carrying farmers, bicycles and baskets "
              "of apples to the market on the other side."),
    ("en", "She measured the distance twice, wrote seven numbers on the back of an envelope, and then "
           "decided that the bridge was far too narrow for the truck."),
    ("en-us+f3", "Would you rather spend a quiet week in the mountains, or a noisy weekend in the city "
                 "with music playing until dawn?"),
]
TEST_TEXT = ("en", "Thin clouds drifted over the harbour while the children counted ships, "
                   "laughing at the gulls that chased the fishing boats.")


# ----------------------------------------------------------------------------- audio
def espeak(text: str, voice: str, tmpdir: str, idx: int) -> np.ndarray:
    path = os.path.join(tmpdir, f"s{idx}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", path, text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    x, sr = read_wav(path)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return resample(x, sr, SR)


def synthetic_speech(seconds: float, seed: int) -> np.ndarray:
    """Fallback when espeak-ng is missing: voiced-like harmonic bursts with moving formants."""
    rng = np.random.RandomState(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 110 + 30 * np.sin(2 * np.pi * 0.7 * t) + 20 * np.sin(2 * np.pi * 2.3 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = np.zeros(n)
    for h in range(1, 30):
        fh = h * f0
        amp = (np.exp(-((fh - 500 - 200 * np.sin(2 * np.pi * 1.1 * t)) / 150) ** 2)
               + 0.6 * np.exp(-((fh - 1500 - 400 * np.sin(2 * np.pi * 0.9 * t + 2)) / 250) ** 2)
               + 0.2 / h)
        x += amp * np.sin(h * phase)
    env = (np.sin(2 * np.pi * 3.0 * t) > -0.3).astype(np.float64)
    env = np.convolve(env, np.hanning(481) / np.hanning(481).sum(), mode="same")
    x = x * env + 0.01 * rng.randn(n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def make_speech(tmpdir: str, seed: int):
    """(training audio ~16 s, test clip of exactly 4 s), float32 at 24 kHz."""
    have_espeak = shutil.which("espeak-ng") is not None
    if have_espeak:
        parts = [espeak(t, v, tmpdir, i) for i, (v, t) in enumerate(TRAIN_TEXT)]
        train = np.concatenate(parts)
        test = espeak(TEST_TEXT[1], TEST_TEXT[0], tmpdir, 99)
    else:
        print("warning: espeak-ng not found, using synthetic audio", file=sys.stderr)
        train = synthetic_speech(16.0, seed + 1)
        test = synthetic_speech(6.0, seed + 2)
    train = (0.7 * train / max(1e-9, float(np.abs(train).max()))).astype(np.float32)
    n = int(CLIP_SECONDS * SR)
    # skip the leading silence, then take exactly 4 s (zero-padded if short)
    voiced = np.nonzero(np.abs(test) > 0.02 * np.abs(test).max())[0]
    start = max(0, int(voiced[0]) - SR // 20) if len(voiced) else 0
    clip = np.zeros(n, dtype=np.float32)
    seg = test[start:start + n]
    clip[:len(seg)] = seg
    clip = 0.7 * clip / max(1e-9, float(np.abs(clip).max()))
    return train, clip.astype(np.float32)


def to_int16_float(x: np.ndarray) -> np.ndarray:
    """The float values a 16-bit WAV of x reads back as (what the engine will see)."""
    q = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767)
    return (q / 32768.0).astype(np.float32)


# ----------------------------------------------------------------------------- model
def build_model(config: str, seed: int) -> WavTokenizer:
    torch.manual_seed(seed)
    np.random.seed(seed)
    kw = dict(SMALL)
    kw.update(CONFIGS[config])
    model = WavTokenizer(**kw)
    model.eval()
    return model


def latents_of(model: WavTokenizer, audio: np.ndarray) -> torch.Tensor:
    return model.feature_extractor.encoder(torch.from_numpy(audio)[None, None])


def centre_encoder(model: WavTokenizer, train: np.ndarray):
    last = model.feature_extractor.encoder.model[-1].conv.conv
    lat = latents_of(model, train)
    last.bias.sub_(lat.mean(dim=(0, 2)))


def init_codebook(model: WavTokenizer, train: np.ndarray, gen: torch.Generator):
    lat = latents_of(model, train)[0].t().contiguous()  # (N, D)
    cb = model.feature_extractor.quantizer.vq.layers[0]._codebook
    cb.init_from_data(lat, force=True)
    spread = lat.std(dim=0)
    noise = torch.randn(cb.embed.shape, generator=gen) * (0.5 * spread)[None, :]
    cb.embed.add_(noise)
    cb.embed_avg.copy_(cb.embed * cb.cluster_size.clamp(min=1)[:, None])
    return lat


def min_relative_gap(model: WavTokenizer, latents: torch.Tensor) -> float:
    """Smallest (second-best - best) squared distance over frames, relative to |latent|^2 (float64)."""
    x = latents[0].t().double()
    e = model.feature_extractor.quantizer.vq.layers[0]._codebook.embed.double()
    d = torch.cdist(x, e).pow(2)
    two = d.topk(2, dim=1, largest=False).values
    return float(((two[:, 1] - two[:, 0]) / x.pow(2).sum(1).clamp(min=1e-30)).min())


def extra_training_state(seed: int):
    """A few non-inference tensors, like the discriminators / losses in release checkpoints."""
    g = torch.Generator().manual_seed(seed + 7)
    return {
        "multiperioddisc.discriminators.0.convs.0.weight_g": torch.rand(32, 1, 1, 1, generator=g),
        "multiperioddisc.discriminators.0.convs.0.weight_v": torch.randn(32, 1, 5, 1, generator=g),
        "multiperioddisc.discriminators.0.convs.0.bias": torch.zeros(32),
        "multiresddisc.discriminators.0.emb.weight": torch.randn(4, 32, generator=g),
        "melspec_loss.mel_spec.spectrogram.window": torch.hann_window(1024),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="40")
    ap.add_argument("--seed", type=int, default=None, help="default: 1234 (75, 75c) / 4040 (40)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else (4040 if args.config == "40" else 1234)
    t0 = time.time()
    torch.set_num_threads(1)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train, clip = make_speech(tmp, seed)
    clip = to_int16_float(clip)
    log(f"config {args.config}: training speech {len(train) / SR:.2f} s, clip {len(clip) / SR:.2f} s, seed {seed}")

    with torch.no_grad():
        model = build_model(args.config, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        centre_encoder(model, train)
        init_codebook(model, train, gen)

        x = torch.from_numpy(clip)[None]
        features, codes, latents = model.encode(x)
        gap = min_relative_gap(model, latents)
        # re-draw the codebook noise (deterministically) if some decision is too close to call
        tries = 0
        while gap < MIN_REL_GAP and tries < 20:
            tries += 1
            init_codebook(model, train, gen)
            features, codes, latents = model.encode(x)
            gap = min_relative_gap(model, latents)
        if gap < MIN_REL_GAP:
            raise SystemExit(f"could not separate code decisions (min relative gap {gap:.2e})")
        decoded = model.decode(model.codes_to_features(codes), bandwidth_id=0)

    n_used = len(np.unique(codes.numpy()))
    log(f"frames {codes.shape[-1]}, distinct codes {n_used}, min relative code gap {gap:.3e}"
        f" (redraws {tries}), latents |max| {float(latents.abs().max()):.3g}, "
        f"decoded rms {float(decoded.pow(2).mean().sqrt()):.3g}")

    model.save_checkpoint(os.path.join(args.out, "model.ckpt"), os.path.join(args.out, "config.yaml"),
                          extra_state=extra_training_state(seed))
    write_wav(os.path.join(args.out, "speech.input.wav"), clip, SR, "int16")
    np.save(os.path.join(args.out, "speech.latents.npy"), latents.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "speech.features.npy"), features.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "speech.codes.npy"), codes.numpy().astype(np.int64))
    write_wav(os.path.join(args.out, "speech.decoded.wav"), decoded[0].numpy().astype(np.float32), SR, "float32")
    log(f"wrote {args.out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
