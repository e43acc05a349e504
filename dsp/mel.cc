#include "dsp/mel.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace wavtok {

double hz_to_mel_htk(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz_htk(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

std::vector<float> mel_filterbank(int n_freqs, double f_min, double f_max, int n_mels, int sample_rate) {
  if (n_freqs < 2 || n_mels < 1 || sample_rate <= 0 || !(f_min >= 0) || !(f_max > f_min))
    throw Error("mel_filterbank: invalid arguments (n_freqs " + std::to_string(n_freqs) + ", n_mels " +
                std::to_string(n_mels) + ", f_min " + std::to_string(f_min) + ", f_max " + std::to_string(f_max) + ")");
  const double nyquist = double(sample_rate / 2);
  const double m_lo = hz_to_mel_htk(f_min), m_hi = hz_to_mel_htk(f_max);
  std::vector<double> pts(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) pts[i] = mel_to_hz_htk(m_lo + (m_hi - m_lo) * i / (n_mels + 1));
  std::vector<float> fb(size_t(n_mels) * n_freqs, 0.0f);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = pts[m], mid = pts[m + 1], hi = pts[m + 2];
    for (int k = 0; k < n_freqs; ++k) {
      const double f = nyquist * k / (n_freqs - 1);
      const double rise = (f - lo) / (mid - lo), fall = (hi - f) / (hi - mid);
      fb[size_t(m) * n_freqs + k] = float(std::max(0.0, std::min(rise, fall)));
    }
  }
  return fb;
}

MelSpectrogram::MelSpectrogram(int sample_rate, int n_fft, int hop, int n_mels, double f_min, double f_max, int power)
    : n_mels_(n_mels),
      power_(power),
      stft_(n_fft, hop),
      fb_(mel_filterbank(n_fft / 2 + 1, f_min, f_max > 0 ? f_max : double(sample_rate / 2), n_mels, sample_rate)) {
  if (power != 1 && power != 2) throw Error("MelSpectrogram: power must be 1 or 2, got " + std::to_string(power));
}

Spectrogram MelSpectrogram::compute(std::span<const float> x) const {
  const Spectrogram mag = stft_.magnitude(x);
  Spectrogram mel;
  mel.frames = mag.frames;
  mel.bins = n_mels_;
  mel.data.assign(size_t(mel.frames) * n_mels_, 0.0f);
  std::vector<float> row(mag.bins);
  for (int64_t t = 0; t < mag.frames; ++t) {
    for (int b = 0; b < mag.bins; ++b) {
      const float v = mag.at(t, b);
      row[b] = power_ == 2 ? v * v : v;
    }
    for (int m = 0; m < n_mels_; ++m) {
      const float* f = &fb_[size_t(m) * mag.bins];
      double s = 0;
      for (int b = 0; b < mag.bins; ++b) s += double(f[b]) * row[b];
      mel.data[size_t(t) * n_mels_ + m] = float(s);
    }
  }
  return mel;
}

}  // namespace wavtok
