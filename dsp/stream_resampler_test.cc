// The chunked resampler against closed-form sines and against resampling the whole signal at once.
#include "dsp/stream_resampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/util.h"
#include "dsp/audio_io.h"

namespace wavtok {
namespace {

std::vector<float> sine(double hz, int rate, size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = float(0.5 * std::sin(2 * M_PI * hz * double(i) / rate));
  return x;
}

double snr_db(const float* ref, const float* x, size_t n) { return wavtok::snr_db({ref, n}, {x, n}); }

// Pushes x in chunks cycling through `sizes`, then flushes.
std::vector<float> chunked(StreamResampler& r, const std::vector<float>& x, const std::vector<size_t>& sizes) {
  std::vector<float> out;
  size_t k = 0;
  for (size_t at = 0; at < x.size(); k = (k + 1) % sizes.size()) {
    const size_t n = std::min(sizes[k], x.size() - at);
    const size_t before = out.size();
    const size_t got = r.push(x.data() + at, n, out);
    EXPECT_EQ(got, out.size() - before);
    at += n;
  }
  r.flush(out);
  return out;
}

TEST(StreamResampler, ChunkedEqualsWholeAndTheClosedForm) {
  for (auto [from, to] : {std::pair{48000, 24000}, {44100, 24000}, {16000, 24000}, {24000, 48000}}) {
    const size_t n = size_t(from) * 2;  // 2 s
    const auto x = sine(997.0, from, n);
    const auto whole = resample(x, from, to);
    StreamResampler r(from, to);
    const auto out = chunked(r, x, {1, 7, 480, 4801, 333});
    // The length of the whole signal's conversion, up to a sample of rounding at the end.
    EXPECT_LE(std::abs(double(out.size()) - double(whole.size())), 1.0) << from << " -> " << to;
    const size_t m = std::min(out.size(), whole.size());
    const double vs_whole = snr_db(whole.data(), out.data(), m - 100);
    // Independent truth: the same sine sampled at the output rate (away from the ends, where the filter sees
    // the signal start and stop).
    const auto ideal = sine(997.0, to, m);
    const size_t edge = size_t(to) / 20;
    const double vs_ideal = snr_db(ideal.data() + edge, out.data() + edge, m - 2 * edge);
    std::printf("%d -> %d Hz: %zu samples, %.1f dB vs whole, %.1f dB vs the ideal sine, delay %.2f ms\n", from, to,
                out.size(), vs_whole, vs_ideal, r.delay_ms());
    EXPECT_GE(vs_whole, 100.0) << from << " -> " << to;
    EXPECT_GE(vs_ideal, 80.0) << from << " -> " << to;
    // After flush the resampler starts a new stream from scratch: the same input gives the same output.
    EXPECT_EQ(chunked(r, x, {4800}), chunked(r, x, {4800})) << from << " -> " << to;
  }
}

TEST(StreamResampler, HoldsBackOnlyTheFilterDelay) {
  StreamResampler r(48000, 24000);
  const auto x = sine(440.0, 48000, 48000);
  std::vector<float> out;
  for (size_t at = 0; at < x.size(); at += 960) r.push(x.data() + at, 960, out);  // 20 ms chunks
  // After 1 s of input, everything but the filter's support is out.
  const double held_ms = 1000.0 - 1000.0 * double(out.size()) / 24000;
  std::printf("held back after 1 s: %.2f ms (delay_ms %.2f)\n", held_ms, r.delay_ms());
  EXPECT_GT(held_ms, 0.0);
  EXPECT_LT(held_ms, 40.0);  // libsoxr's high-quality linear-phase filter at 48 -> 24 kHz: ~32 ms
  EXPECT_NEAR(held_ms, r.delay_ms(), 1.0);
}

TEST(StreamResampler, EqualRatesPassThroughAndBadRatesThrow) {
  StreamResampler same(24000, 24000);
  const auto x = sine(440.0, 24000, 1000);
  std::vector<float> out;
  EXPECT_EQ(same.push(x.data(), x.size(), out), x.size());
  EXPECT_EQ(same.flush(out), 0u);
  EXPECT_EQ(out, x);
  EXPECT_EQ(same.delay_ms(), 0.0);
  EXPECT_THROW(StreamResampler(0, 24000), Error);
  EXPECT_THROW(StreamResampler(24000, -1), Error);
  EXPECT_THROW(StreamResampler(kMaxSampleRate + 1, 24000), Error);
  StreamResampler r(48000, 24000);
  EXPECT_THROW(r.push(nullptr, 5, out), Error);
}

}  // namespace
}  // namespace wavtok
