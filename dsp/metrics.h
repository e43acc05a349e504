// Objective audio quality metrics. All take the reference (clean) signal first and the estimate second, require
// equal, non-zero lengths, and throw wavtok::Error otherwise. Sums are accumulated in double.
#pragma once

#include <span>
#include <vector>

namespace wavtok {

// Scale-invariant SNR in dB (Le Roux et al. 2019, as in Conv-TasNet/asteroid without epsilons): both signals are made
// zero-mean, s = (<e, r> / <r, r>) r is the estimate's projection on the reference, and
// SI-SNR = 10 log10(|s|^2 / |e - s|^2); very large (+inf if the residual is exactly 0) for a multiple of the reference.
// Throws if the reference is constant (zero after removing its mean).
double si_snr(std::span<const float> reference, std::span<const float> estimate);

// Plain SNR in dB: 10 log10(sum r^2 / sum (e - r)^2); +inf for identical signals. Throws for a zero reference.
double snr(std::span<const float> reference, std::span<const float> estimate);

// Multi-resolution mel distance. For each n_fft in n_ffts: MelSpectrogram(sample_rate, n_fft, hop = n_fft / 4,
// n_mels, f_min 0, f_max sample_rate / 2, power 1 = magnitude, HTK scale, no filter norm, center=True reflect;
// see mel.h), then the mean over all frames and mel bands of |log10(max(M_ref, clamp)) - log10(max(M_est, clamp))|.
// The result is the mean of those per-resolution values. 0 for identical signals; scaling the estimate by g
// gives |log10 g| while no band is clamped. Signals must be longer than max(n_ffts) / 2 samples.
struct MelDistanceOptions {
  std::vector<int> n_ffts = {512, 1024, 2048};
  int n_mels = 80;
  double clamp = 1e-5;
};
double mel_distance(std::span<const float> reference, std::span<const float> estimate, int sample_rate,
                    const MelDistanceOptions& options = {});

// Short-Time Objective Intelligibility (Taal, Hendriks, Heusdens, Jensen 2011), the standard (not extended) form,
// following the reference MATLAB code's conventions (as pystoi does):
//  1. resample both signals to 10 kHz (libsoxr; skipped at 10 kHz). pystoi uses an Octave-style polyphase filter
//     instead, so at other rates values differ from pystoi's slightly (the resamplers' passbands differ);
//  2. silent frame removal: 256-sample frames starting at 0, 128, ... < length - 256, window hanning(258)[1:-1]
//     (MATLAB `hanning(256)`); frames whose clean energy is not within 40 dB of the loudest clean frame are dropped
//     from both signals, which are rebuilt by overlap-add of the kept windowed frames;
//  3. STFT with the same window and hop, zero-padded to 512 points, frames starting at 0, 128, ... < length - 256;
//  4. 15 one-third-octave bands, centres 150 * 2^(k/3) Hz, edges 150 * 2^((2k -+ 1)/6) Hz rounded to the nearest
//     FFT bin (band = bins [low, high) ), band envelope = sqrt of summed |X|^2;
//  5. segments of 30 frames (384 ms) ending at every frame from the 30th on: per band, the processed envelope is
//     scaled to the clean one's norm, clipped to (1 + 10^(15/20)) times the clean envelope (beta = -15 dB), both are
//     made zero-mean and unit-norm (eps 2.2e-16), and their inner product is averaged over bands and segments.
// If fewer than 30 frames remain after silence removal, returns 1e-5 as pystoi does.
double stoi(std::span<const float> clean, std::span<const float> processed, int sample_rate);

}  // namespace wavtok
