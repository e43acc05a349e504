#include "dsp/istft.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <random>
#include <vector>

#include "core/error.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

constexpr double kPi = std::numbers::pi;

struct Spectrum {
  int64_t frames;
  int bins;
  std::vector<float> re, im;
};

Spectrum random_spectrum(int n_fft, int64_t frames, uint32_t seed) {
  Spectrum s{frames, n_fft / 2 + 1, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  s.re.resize(frames * s.bins);
  s.im.resize(frames * s.bins);
  for (auto& v : s.re) v = nd(rng);
  for (auto& v : s.im) v = nd(rng);
  return s;
}

// Float64 reference written straight from the definition: O(N^2) inverse real DFT (imaginary parts of DC and
// Nyquist dropped, as a Hermitian spectrum implies), periodic Hann, overlap-add over (T-1)*hop + n_fft samples,
// squared-window envelope over the same span, trim (n_fft - hop) / 2 from both ends, divide.
std::vector<double> reference_istft(const Spectrum& s, int n_fft, int hop) {
  const int64_t T = s.frames;
  const int64_t total = (T - 1) * hop + n_fft;
  std::vector<double> y(total, 0.0), env(total, 0.0), w(n_fft);
  for (int n = 0; n < n_fft; ++n) w[n] = 0.5 - 0.5 * std::cos(2 * kPi * n / n_fft);
  for (int64_t t = 0; t < T; ++t) {
    const float* re = &s.re[t * s.bins];
    const float* im = &s.im[t * s.bins];
    for (int n = 0; n < n_fft; ++n) {
      double v = re[0] + re[n_fft / 2] * ((n % 2) ? -1.0 : 1.0);
      for (int k = 1; k < n_fft / 2; ++k) {
        const double a = 2 * kPi * double(k) * n / n_fft;
        v += 2.0 * (re[k] * std::cos(a) - im[k] * std::sin(a));
      }
      y[t * hop + n] += w[n] * v / n_fft;
      env[t * hop + n] += w[n] * w[n];
    }
  }
  const int pad = (n_fft - hop) / 2;
  std::vector<double> out;
  for (int64_t p = pad; p < total - pad; ++p) out.push_back(y[p] / env[p]);
  return out;
}

void expect_matches_reference(int n_fft, int hop, int64_t frames, uint32_t seed) {
  SCOPED_TRACE("n_fft " + std::to_string(n_fft) + " hop " + std::to_string(hop) + " frames " + std::to_string(frames));
  const Spectrum s = random_spectrum(n_fft, frames, seed);
  Istft istft(n_fft, hop);
  const std::vector<double> ref = reference_istft(s, n_fft, hop);
  ASSERT_EQ(istft.output_length(frames), int64_t(ref.size()));
  std::vector<float> out(ref.size() + 8, 12345.0f);  // sentinel past the end checks the write count
  istft.inverse(s.re.data(), s.im.data(), frames, out.data());
  double peak = 0, err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    peak = std::max(peak, std::abs(ref[i]));
    err = std::max(err, std::abs(ref[i] - out[i]));
  }
  EXPECT_LT(err, 2e-6 * peak) << "max abs error " << err << " peak " << peak;
  for (size_t i = ref.size(); i < out.size(); ++i) EXPECT_EQ(out[i], 12345.0f);
}

TEST(Istft, MatchesFloat64ReferenceWavTokenizerGeometry) { expect_matches_reference(1280, 320, 12, 1); }

TEST(Istft, MatchesFloat64ReferenceOtherGeometries) {
  expect_matches_reference(16, 4, 9, 2);
  expect_matches_reference(64, 16, 20, 3);
  expect_matches_reference(48, 24, 7, 4);
  expect_matches_reference(30, 10, 11, 5);
  expect_matches_reference(16, 5, 10, 6);  // odd n_fft - hop: T*hop + 1 samples
  expect_matches_reference(40, 30, 5, 7);
  expect_matches_reference(40, 38, 6, 8);
}

TEST(Istft, ShortStreamsMatchReference) {
  for (int64_t frames = 1; frames <= 5; ++frames) {
    expect_matches_reference(64, 16, frames, 10 + frames);
    expect_matches_reference(1280, 320, frames, 20 + frames);
  }
}

TEST(Istft, OutputLength) {
  Istft a(1280, 320);
  EXPECT_EQ(a.output_length(300), 300 * 320);
  EXPECT_EQ(a.output_length(0), 0);
  Istft b(16, 5);
  EXPECT_EQ(b.output_length(10), 10 * 5 + 1);
}

// One bin k with magnitude A: each frame's irfft is (2A/N) cos(2 pi k n / N + phase). Advancing the phase by
// 2 pi k hop / N per frame keeps all frames on one global cosine, so away from the edges the output is that cosine
// times sum(w) / sum(w^2), which for a periodic Hann at hop N/4 is 2 / 1.5.
TEST(Istft, SingleBinGivesClosedFormCosine) {
  const int n_fft = 1280, hop = 320, bins = n_fft / 2 + 1, pad = (n_fft - hop) / 2;
  const int64_t frames = 40;
  for (int k : {1, 37, 40, 300}) {
    const double A = 3.5, phi = 0.7;
    std::vector<float> re(frames * bins, 0.0f), im(frames * bins, 0.0f);
    for (int64_t t = 0; t < frames; ++t) {
      const double ph = phi + 2 * kPi * k * double(t * hop) / n_fft;
      re[t * bins + k] = float(A * std::cos(ph));
      im[t * bins + k] = float(A * std::sin(ph));
    }
    Istft istft(n_fft, hop);
    std::vector<float> out(istft.output_length(frames));
    istft.inverse(re.data(), im.data(), frames, out.data());
    const double amp = 2 * A / n_fft * (2.0 / 1.5);
    double err = 0;
    // Interior: positions whose four covering frames all exist.
    for (int64_t i = n_fft - hop - pad; i < frames * hop - pad; ++i) {
      const double expected = amp * std::cos(2 * kPi * k * double(i + pad) / n_fft + phi);
      err = std::max(err, std::abs(out[i] - expected));
    }
    EXPECT_LT(err, 1e-5 * amp) << "bin " << k;
  }
}

TEST(Istft, IgnoresImaginaryPartOfDcAndNyquist) {
  const int n_fft = 64, hop = 16, bins = 33;
  Spectrum s = random_spectrum(n_fft, 6, 99);
  Istft istft(n_fft, hop);
  std::vector<float> a(istft.output_length(6)), b(a.size());
  istft.inverse(s.re.data(), s.im.data(), 6, a.data());
  for (int t = 0; t < 6; ++t) s.im[t * bins] = s.im[t * bins + bins - 1] = 0.0f;
  istft.inverse(s.re.data(), s.im.data(), 6, b.data());
  EXPECT_EQ(a, b);
}

TEST(Istft, RepeatedCallsGiveSameResult) {
  const Spectrum s = random_spectrum(1280, 10, 5);
  Istft istft(1280, 320);
  std::vector<float> a(istft.output_length(10)), b(a.size());
  istft.inverse(s.re.data(), s.im.data(), 10, a.data());
  const Spectrum other = random_spectrum(1280, 3, 6);
  std::vector<float> scratch(istft.output_length(3));
  istft.inverse(other.re.data(), other.im.data(), 3, scratch.data());
  istft.inverse(s.re.data(), s.im.data(), 10, b.data());
  EXPECT_EQ(a, b);
}

TEST(IstftStream, ConcatenationEqualsOneShotBitForBit) {
  for (auto [n_fft, hop] : {std::pair{1280, 320}, std::pair{64, 16}, std::pair{16, 5}, std::pair{48, 24}}) {
    SCOPED_TRACE(std::to_string(n_fft) + "/" + std::to_string(hop));
    const int64_t frames = 23;
    const Spectrum s = random_spectrum(n_fft, frames, 42);
    Istft istft(n_fft, hop);
    std::vector<float> one(istft.output_length(frames));
    istft.inverse(s.re.data(), s.im.data(), frames, one.data());

    IstftStream stream(n_fft, hop);
    std::vector<float> got, buf(frames * hop + n_fft);
    const int pad = stream.pad();
    int64_t pushed = 0;
    const int chunks[] = {1, 2, 1, 3, 5, 1, 4, 6};
    for (int c : chunks) {
      const int64_t n = stream.push(&s.re[pushed * s.bins], &s.im[pushed * s.bins], c, buf.data());
      const int64_t before = std::max<int64_t>(0, pushed * hop - pad);
      pushed += c;
      EXPECT_EQ(n, std::max<int64_t>(0, pushed * hop - pad) - before);
      got.insert(got.end(), buf.begin(), buf.begin() + n);
    }
    ASSERT_EQ(pushed, frames);
    const int64_t n = stream.finish(buf.data());
    EXPECT_EQ(n, stream.tail_length());
    got.insert(got.end(), buf.begin(), buf.begin() + n);
    EXPECT_EQ(got, one);
    EXPECT_EQ(stream.frames_pushed(), 0);  // finish() resets
  }
}

TEST(IstftStream, FinishWithoutFramesWritesNothing) {
  IstftStream stream(64, 16);
  float dummy = 0;
  EXPECT_EQ(stream.finish(&dummy), 0);
}

TEST(Istft, RejectsBadGeometry) {
  EXPECT_THROW(Istft(15, 4), Error);
  EXPECT_THROW(Istft(16, 0), Error);
  EXPECT_THROW(Istft(16, 17), Error);
  EXPECT_THROW(Istft(16, 16), Error);  // no overlap: the envelope is zero at each frame start
}

TEST(MagPhase, ExpClipsAfterExponentAndPropagatesNan) {
  const float logmag[] = {0.0f, 1.0f, std::log(100.0f) + 0.5f, 50.0f, NAN, -3.0f};
  const float phase[] = {0.0f, 0.5f, 1.0f, -2.0f, 0.0f, 3.0f};
  float re[6], im[6];
  magphase_to_complex(logmag, phase, 6, re, im);
  for (int i = 0; i < 6; ++i) {
    if (i == 4) {
      EXPECT_TRUE(std::isnan(re[i]));
      continue;
    }
    const double mag = std::min(std::exp(double(logmag[i])), 100.0);
    EXPECT_NEAR(re[i], mag * std::cos(double(phase[i])), 1e-5 * mag);
    EXPECT_NEAR(im[i], mag * std::sin(double(phase[i])), 1e-5 * mag);
  }
  EXPECT_NEAR(std::hypot(re[3], im[3]), 100.0, 1e-4);
}

// The head's computation written with torch ops (irfft, window, fold-style overlap-add, envelope, trim), when
// Debian's Python has torch: a second, float32 reference built on an independent FFT.
TEST(Istft, MatchesTorchFormulation) {
  const std::filesystem::path dir = testing::scratch_dir();
  const int n_fft = 1280, hop = 320;
  const int64_t frames = 30;
  const Spectrum s = random_spectrum(n_fft, frames, 77);
  testing::write_f32(dir / "re.f32", s.re);
  testing::write_f32(dir / "im.f32", s.im);
  std::ofstream(dir / "ref.py") << R"(
import sys
try:
    import numpy as np, torch
except ImportError:
    print("skip"); sys.exit(0)
torch.set_num_threads(1)
n_fft, hop = int(sys.argv[4]), int(sys.argv[5])
re = torch.from_numpy(np.fromfile(sys.argv[1], dtype="<f4")).reshape(-1, n_fft // 2 + 1)
im = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4")).reshape(-1, n_fft // 2 + 1)
spec = torch.complex(re, im).T[None]                      # (1, bins, T)
T = spec.shape[-1]
win = torch.hann_window(n_fft)
frames = torch.fft.irfft(spec, n_fft, dim=1) * win[None, :, None]
size = (T - 1) * hop + n_fft
y = torch.nn.functional.fold(frames, (1, size), (1, n_fft), stride=(1, hop))[0, 0, 0]
env = torch.nn.functional.fold(win.square()[None, :, None].expand(1, n_fft, T), (1, size), (1, n_fft),
                               stride=(1, hop))[0, 0, 0]
pad = (n_fft - hop) // 2
(y[pad:size - pad] / env[pad:size - pad]).numpy().astype("<f4").tofile(sys.argv[3])
print("ok")
)";
  const std::string out = testing::python_first_line((dir / "ref.py").string() + " " + (dir / "re.f32").string() + " " +
                                                     (dir / "im.f32").string() + " " + (dir / "y.f32").string() + " " +
                                                     std::to_string(n_fft) + " " + std::to_string(hop));
  if (out == "skip\n") GTEST_SKIP() << "/usr/bin/python3 has no torch";
  ASSERT_EQ(out, "ok\n");
  const auto ref = testing::read_f32(dir / "y.f32");
  Istft istft(n_fft, hop);
  std::vector<float> y(istft.output_length(frames));
  ASSERT_EQ(ref.size(), y.size());
  istft.inverse(s.re.data(), s.im.data(), frames, y.data());
  double err = 0, peak = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, double(std::abs(ref[i] - y[i])));
    peak = std::max(peak, double(std::abs(ref[i])));
  }
  EXPECT_LT(err, 1e-5 * peak) << "max abs error " << err << " peak " << peak;
}

}  // namespace
}  // namespace wavtok
