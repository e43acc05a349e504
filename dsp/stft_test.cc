#include "dsp/stft.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <random>

#include "core/error.h"
#include "dsp/real_fft.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

constexpr double kPi = std::numbers::pi;

TEST(RealFft, MatchesDirectDft) {
  for (int n : {2, 8, 30, 512, 1280}) {
    std::mt19937 rng(n);
    std::normal_distribution<float> nd;
    std::vector<float> x(n), back(n);
    for (auto& v : x) v = nd(rng);
    RealFft fft(n);
    std::vector<std::complex<float>> X(fft.bins());
    fft.forward(x.data(), X.data());
    for (int k = 0; k < fft.bins(); ++k) {
      std::complex<double> ref = 0;
      for (int i = 0; i < n; ++i) ref += double(x[i]) * std::polar(1.0, -2 * kPi * double(k) * i / n);
      EXPECT_NEAR(X[k].real(), ref.real(), 1e-4 * std::sqrt(n)) << n << " " << k;
      EXPECT_NEAR(X[k].imag(), ref.imag(), 1e-4 * std::sqrt(n)) << n << " " << k;
    }
    fft.inverse(X.data(), back.data());
    for (int i = 0; i < n; ++i) EXPECT_NEAR(back[i] / n, x[i], 1e-5) << n << " " << i;
  }
  EXPECT_THROW(RealFft(7), Error);
}

// Float64 reference written from torch.stft's definition (center=True, reflect padding).
std::vector<double> reference_mag(const std::vector<float>& x, int n_fft, int hop, int64_t t, int k) {
  std::vector<double> padded;
  const int half = n_fft / 2;
  for (int i = half; i >= 1; --i) padded.push_back(x[i]);
  for (float v : x) padded.push_back(v);
  for (int i = 1; i <= half; ++i) padded.push_back(x[x.size() - 1 - i]);
  std::complex<double> s = 0;
  for (int i = 0; i < n_fft; ++i) {
    const double w = 0.5 - 0.5 * std::cos(2 * kPi * i / n_fft);
    s += w * padded[t * hop + i] * std::polar(1.0, -2 * kPi * double(k) * i / n_fft);
  }
  return {std::abs(s)};
}

TEST(Stft, MatchesReflectPaddedReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(1000);
  for (auto& v : x) v = nd(rng);
  Stft stft(64, 16);
  const Spectrogram s = stft.magnitude(x);
  EXPECT_EQ(s.frames, 1 + 1000 / 16);
  EXPECT_EQ(s.bins, 33);
  for (int64_t t : {int64_t(0), int64_t(1), int64_t(30), s.frames - 2, s.frames - 1})
    for (int k : {0, 1, 7, 32}) EXPECT_NEAR(s.at(t, k), reference_mag(x, 64, 16, t, k)[0], 1e-4) << t << " " << k;
}

TEST(Stft, SineAtBinCentreHasClosedFormMagnitude) {
  // A sinusoid of amplitude A at bin k0 gives |X[k0]| = A/2 * sum(w) = A n/4 under a periodic Hann window and
  // A n/8 at the neighbouring bins, zero elsewhere.
  const int n = 256, hop = 64, k0 = 20;
  const double A = 0.8;
  std::vector<float> x(4096);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(A * std::cos(2 * kPi * k0 * double(i) / n + 0.4));
  const Spectrogram s = Stft(n, hop).magnitude(x);
  for (int64_t t = 4; t < s.frames - 4; ++t) {
    EXPECT_NEAR(s.at(t, k0), A * n / 4, 1e-3);
    EXPECT_NEAR(s.at(t, k0 - 1), A * n / 8, 1e-3);
    EXPECT_NEAR(s.at(t, k0 + 1), A * n / 8, 1e-3);
    EXPECT_NEAR(s.at(t, k0 + 5), 0.0, 1e-3);
  }
}

TEST(Stft, RejectsTooShortInput) {
  Stft stft(64, 16);
  std::vector<float> x(32, 1.0f);
  EXPECT_THROW(stft.magnitude(x), Error);
  x.push_back(0.0f);
  EXPECT_EQ(stft.magnitude(x).frames, 1 + 33 / 16);
}

TEST(Stft, HannIsPeriodic) {
  const auto w = hann_periodic(8);
  EXPECT_FLOAT_EQ(w[0], 0.0f);
  EXPECT_FLOAT_EQ(w[4], 1.0f);
  EXPECT_FLOAT_EQ(w[2], 0.5f);
  EXPECT_FLOAT_EQ(w[7], w[1]);
}

// torch.stft itself, when Debian's Python has torch: the definition this class promises to match.
TEST(Stft, MatchesTorchStft) {
  const std::filesystem::path dir = testing::scratch_dir();
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  std::vector<float> x(5000);
  for (auto& v : x) v = nd(rng);
  testing::write_f32(dir / "x.f32", x);
  const std::vector<std::pair<int, int>> configs = {{512, 128}, {1024, 256}, {2048, 512}, {30, 7}};
  std::ofstream(dir / "ref.py") << R"(
import sys
try:
    import numpy as np, torch
except ImportError:
    print("skip"); sys.exit(0)
torch.set_num_threads(1)
x = torch.from_numpy(np.fromfile(sys.argv[1], dtype="<f4"))
for i in range(2, len(sys.argv), 2):
    n_fft, hop = int(sys.argv[i]), int(sys.argv[i + 1])
    s = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, pad_mode="reflect",
                   return_complex=True).abs()
    s.T.contiguous().numpy().astype("<f4").tofile(f"{sys.argv[1]}.{n_fft}")
print("ok")
)";
  std::string args = (dir / "ref.py").string() + " " + (dir / "x.f32").string();
  for (auto [n_fft, hop] : configs) args += " " + std::to_string(n_fft) + " " + std::to_string(hop);
  const std::string out = testing::python_first_line(args);
  if (out == "skip\n") GTEST_SKIP() << "/usr/bin/python3 has no torch";
  ASSERT_EQ(out, "ok\n");
  for (auto [n_fft, hop] : configs) {
    const auto ref = testing::read_f32(dir / ("x.f32." + std::to_string(n_fft)));
    const Spectrogram s = Stft(n_fft, hop).magnitude(x);
    ASSERT_EQ(ref.size(), s.data.size()) << n_fft;
    double err = 0, peak = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      err = std::max(err, double(std::abs(ref[i] - s.data[i])));
      peak = std::max(peak, double(ref[i]));
    }
    EXPECT_LT(err, 1e-5 * peak) << n_fft << " max abs error " << err;
  }
}

}  // namespace
}  // namespace wavtok
