#include "dsp/mel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace wavtok {
namespace {

TEST(Mel, HtkScaleKnownValues) {
  // HTK: 1000 Hz is (almost exactly) 1000 mel; 700 Hz is 2595 log10(2).
  EXPECT_NEAR(hz_to_mel_htk(1000.0), 999.9855, 1e-3);
  EXPECT_NEAR(hz_to_mel_htk(700.0), 2595.0 * std::log10(2.0), 1e-9);
  EXPECT_DOUBLE_EQ(hz_to_mel_htk(0.0), 0.0);
  for (double f : {10.0, 440.0, 8000.0, 12000.0}) EXPECT_NEAR(mel_to_hz_htk(hz_to_mel_htk(f)), f, 1e-9);
}

// Triangles with norm=None interpolate linearly between neighbouring centres, so between the first and last
// centre the filters sum to exactly 1; each filter peaks at its centre frequency.
TEST(Mel, FilterbankIsAPartitionOfUnityWithHtkCentres) {
  const int sr = 16000, n_fft = 8192, n_freqs = n_fft / 2 + 1, n_mels = 40;
  const auto fb = mel_filterbank(n_freqs, 0.0, 8000.0, n_mels, sr);
  ASSERT_EQ(fb.size(), size_t(n_mels) * n_freqs);
  const double bin_hz = 8000.0 / (n_freqs - 1);
  const double m_hi = hz_to_mel_htk(8000.0);
  auto centre = [&](int m) { return mel_to_hz_htk(m_hi * (m + 1) / (n_mels + 1)); };
  for (int k = 0; k < n_freqs; ++k) {
    const double f = k * bin_hz;
    double sum = 0;
    for (int m = 0; m < n_mels; ++m) {
      const float v = fb[size_t(m) * n_freqs + k];
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 1.0f);
      sum += v;
    }
    if (f >= centre(0) && f <= centre(n_mels - 1)) {
      EXPECT_NEAR(sum, 1.0, 1e-5) << f;
    }
  }
  for (int m = 0; m < n_mels; ++m) {
    int best = 0;
    for (int k = 1; k < n_freqs; ++k)
      if (fb[size_t(m) * n_freqs + k] > fb[size_t(m) * n_freqs + best]) best = k;
    EXPECT_NEAR(best * bin_hz, centre(m), bin_hz) << m;
    // Support: zero at and outside the neighbouring centres (the edges for the outer filters).
    const double lo = m == 0 ? 0.0 : centre(m - 1), hi = m == n_mels - 1 ? 8000.0 : centre(m + 1);
    for (int k = 0; k < n_freqs; ++k)
      if (k * bin_hz <= lo - 1e-9 || k * bin_hz >= hi + 1e-9) {
        EXPECT_EQ(fb[size_t(m) * n_freqs + k], 0.0f);
      }
  }
}

TEST(Mel, SpectrogramOfBinCentredSine) {
  // A cosine of amplitude A at bin k0 has STFT magnitude A n/4 at k0 and A n/8 at k0 +- 1 (periodic Hann), so
  // each mel band is that weighted by the filter values at those three bins.
  const int sr = 24000, n = 1024, hop = 256, k0 = 100;
  const double A = 0.5;
  std::vector<float> x(sr);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(A * std::cos(2 * std::numbers::pi * k0 * double(i) / n));
  MelSpectrogram mel(sr, n, hop, 80);
  const Spectrogram s = mel.compute(x);
  const auto& fb = mel.filterbank();
  const int nf = n / 2 + 1;
  EXPECT_EQ(s.bins, 80);
  EXPECT_EQ(s.frames, 1 + sr / hop);
  for (int m = 0; m < 80; ++m) {
    const double expected =
        A * n / 4 * fb[size_t(m) * nf + k0] + A * n / 8 * (fb[size_t(m) * nf + k0 - 1] + fb[size_t(m) * nf + k0 + 1]);
    EXPECT_NEAR(s.at(40, m), expected, 2e-3 + 1e-4 * expected) << m;
  }
  MelSpectrogram power(sr, n, hop, 80, 0.0, 0.0, 2);
  const Spectrogram p = power.compute(x);
  const double pk = A * n / 4, side = A * n / 8;
  for (int m = 0; m < 80; ++m) {
    const double expected =
        pk * pk * fb[size_t(m) * nf + k0] + side * side * (fb[size_t(m) * nf + k0 - 1] + fb[size_t(m) * nf + k0 + 1]);
    EXPECT_NEAR(p.at(40, m), expected, 1e-2 + 1e-4 * expected) << m;
  }
}

TEST(Mel, RejectsBadArguments) {
  EXPECT_THROW(mel_filterbank(513, 100.0, 50.0, 80, 24000), Error);
  EXPECT_THROW(mel_filterbank(513, 0.0, 8000.0, 0, 24000), Error);
  EXPECT_THROW(MelSpectrogram(24000, 1024, 256, 80, 0.0, 0.0, 3), Error);
}

}  // namespace
}  // namespace wavtok
