#include "dsp/stft.h"

#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"

namespace wavtok {

std::vector<float> hann_periodic(int n) {
  std::vector<float> w(n);
  for (int i = 0; i < n; ++i) w[i] = float(0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / n));
  return w;
}

static int checked(int n_fft, int hop) {
  if (n_fft < 2 || n_fft % 2 != 0) throw Error("STFT: n_fft must be even and >= 2, got " + std::to_string(n_fft));
  if (hop <= 0) throw Error("STFT: hop must be positive, got " + std::to_string(hop));
  return n_fft;
}

Stft::Stft(int n_fft, int hop) : n_fft_(checked(n_fft, hop)), hop_(hop), fft_(n_fft), window_(hann_periodic(n_fft)) {}

Spectrogram Stft::magnitude(std::span<const float> x) const {
  const int64_t len = int64_t(x.size());
  const int64_t half = n_fft_ / 2;
  if (len <= half)
    throw Error("STFT: signal of " + std::to_string(len) + " samples is too short for reflect padding with n_fft " +
                std::to_string(n_fft_));
  Spectrogram s;
  s.frames = frames(len);
  s.bins = bins();
  s.data.resize(size_t(s.frames) * s.bins);
  std::vector<float> frame(n_fft_);
  std::vector<std::complex<float>> spec(s.bins);
  for (int64_t t = 0; t < s.frames; ++t) {
    for (int i = 0; i < n_fft_; ++i) {
      // Index into the unpadded signal; reflect about the first and last samples.
      int64_t j = t * hop_ + i - half;
      if (j < 0) j = -j;
      if (j >= len) j = 2 * (len - 1) - j;
      frame[i] = x[size_t(j)] * window_[i];
    }
    fft_.forward(frame.data(), spec.data());
    float* row = &s.data[size_t(t) * s.bins];
    for (int b = 0; b < s.bins; ++b) row[b] = std::abs(spec[b]);
  }
  return s;
}

}  // namespace wavtok
