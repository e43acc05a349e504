"""Reference outputs of the PyTorch implementation for one model and one clip, in the fixture layout.

    /usr/bin/python3 python/reference_outputs.py --model M.wtk --input clip.wav --out DIR

Writes DIR/speech.input.wav (the clip as the reference read it, 24 kHz), speech.latents.npy, speech.features.npy,
speech.codes.npy (int64 (n_q, 1, F)) and speech.decoded.wav (float32, codes -> audio), computed in float32 on one
thread, so the C++ engine can be checked against the reference on any model (e.g. the shipped default model).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavtok_ref import read_wav, resample, write_wav  # noqa: E402
from wtk_io import load_wtk_as_reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_wtk_as_reference(a.model)
    audio, sr = read_wav(a.input)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != model.sample_rate:
        audio = resample(audio, sr, model.sample_rate)
    audio = audio.astype(np.float32)
    os.makedirs(a.out, exist_ok=True)
    with torch.no_grad():
        features, codes, latents = model.encode(torch.from_numpy(audio)[None])
        decoded = model.decode(model.codes_to_features(codes), bandwidth_id=0)
    write_wav(os.path.join(a.out, "speech.input.wav"), audio, model.sample_rate, "float32")
    np.save(os.path.join(a.out, "speech.latents.npy"), latents.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "speech.features.npy"), features.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "speech.codes.npy"), codes.numpy().astype(np.int64))
    write_wav(os.path.join(a.out, "speech.decoded.wav"), decoded[0].numpy().astype(np.float32), model.sample_rate,
              "float32")


if __name__ == "__main__":
    main()
