// Forward STFT magnitude, matching torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
// pad_mode="reflect").abs(): the signal is reflect-padded by n_fft/2 on both sides (edge sample not repeated),
// framed every hop samples, multiplied by a periodic Hann window of length n_fft, and transformed unnormalised.
// Frames: 1 + len / hop (integer division); bins: n_fft / 2 + 1.
#pragma once

#include <complex>
#include <cstdint>
#include <span>
#include <vector>

#include "dsp/real_fft.h"

namespace wavtok {

// frames x bins, row-major.
struct Spectrogram {
  int64_t frames = 0;
  int bins = 0;
  std::vector<float> data;
  float at(int64_t t, int b) const { return data[size_t(t) * bins + b]; }
};

class Stft {
 public:
  Stft(int n_fft, int hop);  // n_fft even, hop > 0; throws wavtok::Error otherwise

  int n_fft() const { return n_fft_; }
  int hop() const { return hop_; }
  int bins() const { return n_fft_ / 2 + 1; }
  int64_t frames(int64_t length) const { return 1 + length / hop_; }

  // |X| per frame and bin. Reflect padding needs length > n_fft / 2, as in torch; shorter input throws.
  Spectrogram magnitude(std::span<const float> x) const;

 private:
  int n_fft_, hop_;
  RealFft fft_;
  std::vector<float> window_;
};

// The periodic Hann window torch.hann_window(n) returns: 0.5 - 0.5 cos(2 pi i / n).
std::vector<float> hann_periodic(int n);

}  // namespace wavtok
