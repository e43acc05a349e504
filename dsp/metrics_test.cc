#include "dsp/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using testing::scratch_dir;
constexpr double kPi = std::numbers::pi;

std::string fixtures() { return std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures"; }

std::vector<float> white(size_t n, double rms, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, rms);
  std::vector<float> v(n);
  for (auto& x : v) x = float(nd(rng));
  return v;
}

// x + noise scaled so that sum x^2 / sum noise^2 is exactly 10^(snr_db / 10) (in double).
std::vector<float> add_noise(const std::vector<float>& x, double snr_db, uint32_t seed) {
  const auto n = white(x.size(), 1.0, seed);
  double ex = 0, en = 0;
  for (size_t i = 0; i < x.size(); ++i) ex += double(x[i]) * x[i], en += double(n[i]) * n[i];
  const double g = std::sqrt(ex / en / std::pow(10.0, snr_db / 10.0));
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = float(x[i] + g * n[i]);
  return y;
}

Audio fixture_speech() {
  const std::string p = fixtures() + "/wavtokenizer-75/speech.input.wav";
  if (!fs::exists(p)) return {};
  return read_audio(p, 24000);
}

// ---- SI-SNR / SNR ----

TEST(SiSnr, IdenticalSignalsScoreVeryHigh) {
  const auto x = white(8000, 0.3, 1);
  EXPECT_GT(si_snr(x, x), 100.0);
}

TEST(SiSnr, PhaseShiftedSineMatchesClosedForm) {
  // Over whole periods sin(t + phi) = cos(phi) sin(t) + sin(phi) cos(t): the target part has energy cos^2 phi, the
  // orthogonal rest sin^2 phi, so SI-SNR = 20 log10 |cot phi|.
  const int n = 24000;
  for (double phi : {0.05, 0.3, 1.0, 1.4}) {
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) {
      x[i] = float(std::sin(2 * kPi * 30 * i / n));
      y[i] = float(0.7 * std::sin(2 * kPi * 30 * i / n + phi));
    }
    EXPECT_NEAR(si_snr(x, y), 20 * std::log10(1 / std::tan(phi)), 1e-3) << phi;
  }
}

TEST(SiSnr, DelayedNoiseScoresLow) {
  // White noise shifted by one sample is nearly orthogonal to itself.
  const auto x = white(20001, 0.3, 2);
  const std::vector<float> a(x.begin(), x.end() - 1), b(x.begin() + 1, x.end());
  EXPECT_LT(si_snr(a, b), -20.0);
  const Audio s = fixture_speech();
  if (!s.samples.empty()) {
    // Speech is correlated at short lags, but a 10 ms delay still ruins a waveform metric.
    const size_t d = 240;
    const std::span<const float> all(s.samples);
    EXPECT_LT(si_snr(all.subspan(0, all.size() - d), all.subspan(d)), 0.0);
  }
}

TEST(SiSnr, IsScaleInvariantButSnrIsNot) {
  const auto x = white(10000, 0.3, 3);
  const auto y = add_noise(x, 12.0, 4);
  const double base = si_snr(x, y);
  for (float g : {0.01f, 0.5f, 3.0f, -2.0f}) {
    std::vector<float> gy(y);
    for (auto& v : gy) v *= g;
    EXPECT_NEAR(si_snr(x, gy), base, 1e-4) << g;
  }
  std::vector<float> half(y);
  for (auto& v : half) v *= 0.5f;
  EXPECT_LT(snr(x, half), 6.5);  // half the reference is at best 6.02 dB
}

TEST(Snr, EqualsTheSetNoiseLevel) {
  const Audio s = fixture_speech();
  const auto x = s.samples.empty() ? white(24000, 0.2, 5) : s.samples;
  for (double set : {30.0, 20.0, 5.0, 0.0, -10.0}) EXPECT_NEAR(snr(x, add_noise(x, set, 6)), set, 0.1) << set;
  EXPECT_TRUE(std::isinf(snr(x, x)));
}

TEST(Metrics, RejectDegenerateInput) {
  const std::vector<float> a(100, 0.1f), b(99, 0.1f), zeros(100, 0.0f);
  EXPECT_THROW(si_snr(a, b), Error);
  EXPECT_THROW(snr(a, b), Error);
  EXPECT_THROW(stoi(a, b, 10000), Error);
  EXPECT_THROW(mel_distance(a, b, 24000), Error);
  EXPECT_THROW(si_snr(a, a), Error);  // constant reference
  EXPECT_THROW(snr(zeros, a), Error);
  EXPECT_THROW(si_snr(std::vector<float>{}, std::vector<float>{}), Error);
}

// ---- mel distance ----

TEST(MelDistance, IdenticalIsZero) {
  const auto x = white(24000, 0.2, 7);
  EXPECT_EQ(mel_distance(x, x, 24000), 0.0);
}

TEST(MelDistance, GainGivesLog10OfGain) {
  // Everything up to the log is linear in the signal, so a gain g shifts every unclamped log-mel by log10 g.
  const auto x = white(24000, 0.3, 8);
  for (float g : {0.5f, 2.0f, 0.1f}) {
    std::vector<float> y(x);
    for (auto& v : y) v *= g;
    EXPECT_NEAR(mel_distance(x, y, 24000), std::abs(std::log10(double(g))), 1e-4) << g;
  }
  // Resolutions are averaged: one resolution alone gives the same value here.
  std::vector<float> y(x);
  for (auto& v : y) v *= 2.0f;
  EXPECT_NEAR(mel_distance(x, y, 24000, {{1024}, 80, 1e-5}), std::log10(2.0), 1e-4);
}

TEST(MelDistance, ClampMakesSilenceCompareEqual) {
  const std::vector<float> quiet(24000, 0.0f);
  std::vector<float> faint(24000);
  for (size_t i = 0; i < faint.size(); ++i) faint[i] = (i % 2 ? 1e-9f : -1e-9f);
  EXPECT_EQ(mel_distance(quiet, faint, 24000), 0.0);
}

TEST(MelDistance, GrowsWithNoise) {
  const Audio s = fixture_speech();
  if (s.samples.empty()) GTEST_SKIP() << "fixture missing";
  double last = 0;
  for (double set : {30.0, 10.0, 0.0}) {
    const double d = mel_distance(s.samples, add_noise(s.samples, set, 9), 24000);
    EXPECT_GT(d, last) << set;
    last = d;
  }
}

// ---- STOI ----

TEST(Stoi, IdenticalIsOne) {
  const Audio s = fixture_speech();
  if (s.samples.empty()) GTEST_SKIP() << "fixture missing";
  EXPECT_NEAR(stoi(s.samples, s.samples, 24000), 1.0, 1e-6);
  const auto s10 = resample(s.samples, 24000, 10000);
  EXPECT_NEAR(stoi(s10, s10, 10000), 1.0, 1e-6);
}

TEST(Stoi, OneSampleDelayStaysNearOne) {
  const Audio s = fixture_speech();
  if (s.samples.empty()) GTEST_SKIP() << "fixture missing";
  const std::span<const float> all(s.samples);
  const double v = stoi(all.subspan(0, all.size() - 1), all.subspan(1), 24000);
  EXPECT_GT(v, 0.99);
  EXPECT_LT(v, 1.0);
}

TEST(Stoi, DecreasesAsNoiseGrows) {
  const Audio s = fixture_speech();
  if (s.samples.empty()) GTEST_SKIP() << "fixture missing";
  const double a = stoi(s.samples, add_noise(s.samples, 20, 10), 24000);
  const double b = stoi(s.samples, add_noise(s.samples, 0, 10), 24000);
  const double c = stoi(s.samples, add_noise(s.samples, -10, 10), 24000);
  EXPECT_GT(a, b);
  EXPECT_GT(b, c);
  EXPECT_GT(a, 0.9);
  EXPECT_LT(c, 0.8);
}

TEST(Stoi, TooShortAfterSilenceRemovalGivesPystoiFloor) {
  const auto x = white(2000, 0.2, 11);  // 0.2 s at 10 kHz: fewer than 30 frames
  EXPECT_EQ(stoi(x, x, 10000), 1e-5);
}

// The NumPy reference in python/tests/stoi_reference.py, run with Debian's Python.
double reference_stoi(const fs::path& dir, std::span<const float> x, std::span<const float> y, int rate) {
  testing::write_f32(dir / "clean.f32", x);
  testing::write_f32(dir / "processed.f32", y);
  const std::string out = testing::python_first_line(
      std::string(WAVTOK_SOURCE_DIR) + "/python/tests/stoi_reference.py " + (dir / "clean.f32").string() + " " +
      (dir / "processed.f32").string() + " " + std::to_string(rate));
  return out.empty() ? NAN : std::strtod(out.c_str(), nullptr);
}

TEST(Stoi, MatchesNumpyReferenceOnFixtureSpeech) {
  if (!testing::python_has("numpy")) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  const Audio s = fixture_speech();
  if (s.samples.empty()) GTEST_SKIP() << "fixture missing";
  const std::filesystem::path dir = scratch_dir();
  // At 10 kHz both run on the same samples: only float vs double arithmetic differs.
  const auto x = resample(s.samples, 24000, 10000);
  std::vector<float> echo(x);  // a non-noise degradation: a 30 ms echo, half amplitude
  for (size_t i = 300; i < x.size(); ++i) echo[i] += 0.5f * x[i - 300];
  const std::vector<std::vector<float>> degraded = {add_noise(x, 5, 12), add_noise(x, -5, 13), echo};
  for (const auto& y : degraded) {
    const double ref = reference_stoi(dir, x, y, 10000);
    ASSERT_FALSE(std::isnan(ref)) << "reference script failed";
    EXPECT_NEAR(stoi(x, y, 10000), ref, 1e-6);
  }
  // At 24 kHz each resamples on its own (libsoxr vs ideal FFT resampling).
  const auto y = add_noise(s.samples, 0, 14);
  const double ref = reference_stoi(dir, s.samples, y, 24000);
  ASSERT_FALSE(std::isnan(ref));
  EXPECT_NEAR(stoi(s.samples, y, 24000), ref, 1e-4);
}

TEST(Stoi, MatchesNumpyReferenceOnEspeakSpeech) {
  if (!testing::python_has("numpy")) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  const std::filesystem::path dir = scratch_dir();
  const std::string wav = (dir / "tts.wav").string();
  const std::string cmd = "espeak-ng -w " + wav +
                          " 'The quick brown fox jumps over the lazy dog, then rests by the river.' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "espeak-ng not available";
  const Audio a = read_audio(wav, 0);
  EXPECT_EQ(a.sample_rate, 22050);
  for (double set : {10.0, 0.0}) {
    const auto y = add_noise(a.samples, set, 15);
    const double ref = reference_stoi(dir, a.samples, y, a.sample_rate);
    ASSERT_FALSE(std::isnan(ref));
    EXPECT_NEAR(stoi(a.samples, y, a.sample_rate), ref, 1e-4) << set;
  }
}

}  // namespace
}  // namespace wavtok
