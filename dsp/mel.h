// Mel filterbank and mel spectrogram with torchaudio's defaults: HTK mel scale (mel = 2595 log10(1 + f / 700)),
// no filter normalisation (norm=None), triangles between n_mels + 2 points equally spaced in mel from f_min to
// f_max, evaluated at the n_fft / 2 + 1 frequencies linspace(0, sample_rate // 2) (integer Nyquist, as
// torchaudio.functional.melscale_fbanks). Filters that no bin falls into are all zero, as there.
#pragma once

#include <span>
#include <vector>

#include "dsp/stft.h"

namespace wavtok {

double hz_to_mel_htk(double hz);
double mel_to_hz_htk(double mel);

// n_mels x n_freqs, row-major (the transpose of torchaudio's (n_freqs, n_mels) layout).
std::vector<float> mel_filterbank(int n_freqs, double f_min, double f_max, int n_mels, int sample_rate);

// torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length=hop, n_mels, f_min, f_max, power=1 or 2,
// center=True, pad_mode="reflect", window=hann periodic, norm=None, mel_scale="htk"): frames x n_mels.
class MelSpectrogram {
 public:
  // f_max <= 0 means sample_rate / 2. power is 1 (magnitude) or 2 (power).
  MelSpectrogram(int sample_rate, int n_fft, int hop, int n_mels, double f_min = 0.0, double f_max = 0.0,
                 int power = 1);

  int n_mels() const { return n_mels_; }
  const std::vector<float>& filterbank() const { return fb_; }
  Spectrogram compute(std::span<const float> x) const;  // .bins holds n_mels

 private:
  int n_mels_, power_;
  Stft stft_;
  std::vector<float> fb_;
};

}  // namespace wavtok
