#!/usr/bin/python3
"""Independent float64 NumPy STOI (Taal et al. 2011), used by dsp_tests as a reference for dsp/metrics.cc.

Usage: stoi_reference.py CLEAN.f32 PROCESSED.f32 SAMPLE_RATE
Inputs are raw little-endian float32 mono files; prints the STOI value. Signals not at 10 kHz are resampled with an
ideal (FFT, band-limited, periodic) resampler, so the C++ version (libsoxr) may differ slightly at other rates.
Needs only NumPy.
"""
import sys

import numpy as np

FS = 10000
FRAME = 256
NFFT = 512
BANDS = 15
MIN_FREQ = 150.0
SEG = 30
BETA = -15.0
DYN_RANGE = 40.0
EPS = np.finfo(np.float64).eps


def fft_resample(x, rate_in, rate_out):
    n_out = int(round(len(x) * rate_out / rate_in))
    spec = np.fft.rfft(x)
    keep = min(len(spec), n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=complex)
    out_spec[:keep] = spec[:keep]
    return np.fft.irfft(out_spec, n_out) * (n_out / len(x))


def matlab_hanning(n):
    return np.hanning(n + 2)[1:-1]


def drop_silence(x, y):
    w = matlab_hanning(FRAME)
    hop = FRAME // 2
    starts = np.arange(0, len(x) - FRAME, hop)  # as MATLAB's 1:hop:length(x)-N
    xf = np.stack([w * x[s:s + FRAME] for s in starts])
    yf = np.stack([w * y[s:s + FRAME] for s in starts])
    energy = 20 * np.log10(np.linalg.norm(xf, axis=1) + EPS)
    keep = energy > energy.max() - DYN_RANGE
    xf, yf = xf[keep], yf[keep]
    length = (len(xf) - 1) * hop + FRAME
    xs, ys = np.zeros(length), np.zeros(length)
    for i in range(len(xf)):
        xs[i * hop:i * hop + FRAME] += xf[i]
        ys[i * hop:i * hop + FRAME] += yf[i]
    return xs, ys


def spectrum(x):
    w = matlab_hanning(FRAME)
    hop = FRAME // 2
    frames = [np.fft.rfft(w * x[s:s + FRAME], NFFT) for s in range(0, len(x) - FRAME, hop)]
    return np.array(frames).T  # bins x frames


def octave_matrix():
    freqs = np.arange(NFFT // 2 + 1) * FS / NFFT
    mat = np.zeros((BANDS, len(freqs)))
    for k in range(BANDS):
        lo = np.argmin(np.abs(freqs - MIN_FREQ * 2.0 ** ((2 * k - 1) / 6)))
        hi = np.argmin(np.abs(freqs - MIN_FREQ * 2.0 ** ((2 * k + 1) / 6)))
        mat[k, lo:hi] = 1.0
    return mat


def stoi(x, y, rate):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if rate != FS:
        x, y = fft_resample(x, rate, FS), fft_resample(y, rate, FS)
    x, y = drop_silence(x, y)
    mat = octave_matrix()
    xe = np.sqrt(mat @ np.abs(spectrum(x)) ** 2)
    ye = np.sqrt(mat @ np.abs(spectrum(y)) ** 2)
    n_frames = xe.shape[1]
    if n_frames < SEG:
        return 1e-5
    c = 10 ** (-BETA / 20)
    scores = []
    for end in range(SEG, n_frames + 1):
        xs = xe[:, end - SEG:end]
        ys = ye[:, end - SEG:end]
        alpha = np.linalg.norm(xs, axis=1, keepdims=True) / (np.linalg.norm(ys, axis=1, keepdims=True) + EPS)
        yp = np.minimum(alpha * ys, xs * (1 + c))
        xc = xs - xs.mean(axis=1, keepdims=True)
        yc = yp - yp.mean(axis=1, keepdims=True)
        xc = xc / (np.linalg.norm(xc, axis=1, keepdims=True) + EPS)
        yc = yc / (np.linalg.norm(yc, axis=1, keepdims=True) + EPS)
        scores.append(np.sum(xc * yc, axis=1))
    return float(np.mean(np.array(scores)))


def main():
    clean = np.fromfile(sys.argv[1], dtype="<f4")
    processed = np.fromfile(sys.argv[2], dtype="<f4")
    print(repr(stoi(clean, processed, int(sys.argv[3]))))


if __name__ == "__main__":
    main()
