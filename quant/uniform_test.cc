#include "quant/uniform.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/test_data.h"

namespace wavtok::quant {
namespace {

using testdata::gaussian;
using testdata::laplace;

// Independent float64 reference: per-channel asymmetric/symmetric min-max quantizer written with
// explicit [outer, C, inner] loops.
std::vector<double> ref_fake_quant_per_channel(const std::vector<float>& x, int64_t outer, int64_t C, int64_t inner,
                                               int bits, bool sym, std::vector<double>* steps = nullptr) {
  std::vector<double> lo(C, 1e300), hi(C, -1e300);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const double v = x[(o * C + c) * inner + i];
        lo[c] = std::min(lo[c], v), hi[c] = std::max(hi[c], v);
      }
  std::vector<double> out(x.size());
  if (steps) steps->assign(C, 0);
  for (int64_t c = 0; c < C; ++c) {
    double s, z, qlo, qhi;
    if (sym) {
      qhi = std::pow(2.0, bits - 1) - 1, qlo = -qhi;
      s = float(std::max(std::abs(lo[c]), std::abs(hi[c])) / qhi);
      z = 0;
    } else {
      qlo = 0, qhi = std::pow(2.0, bits) - 1;
      const double l = std::min(lo[c], 0.0), h = std::max(hi[c], 0.0);
      s = float((h - l) / qhi);
      z = std::clamp(-std::nearbyint(l / s), qlo, qhi);
    }
    if (steps) (*steps)[c] = s;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t k = (o * C + c) * inner + i;
        const double q = std::clamp(std::nearbyint(x[k] / s) + z, qlo, qhi);
        out[k] = s * (q - z);
      }
  }
  return out;
}

TEST(UniformLayout, SlotsFollowAxisAndGroups) {
  const std::vector<int64_t> shape{2, 3, 4};
  const SlotLayout ch = slot_layout(shape, Granularity::kPerChannel, 1, 0);
  EXPECT_EQ(ch.slots, 3);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) EXPECT_EQ(ch.slot_of((a * 3 + b) * 4 + c), b);
  const SlotLayout ch0 = slot_layout(shape, Granularity::kPerChannel, 0, 0);
  EXPECT_EQ(ch0.slot_of(13), 1);
  // Groups of 6 along the reduction dims [3, 4] of each of the 2 rows: 4 groups.
  const SlotLayout g = slot_layout(shape, Granularity::kPerGroup, 1, 6);
  EXPECT_EQ(g.slots, 4);
  EXPECT_EQ(g.slot_of(5), 0);
  EXPECT_EQ(g.slot_of(6), 1);
  EXPECT_EQ(g.slot_of(12), 2);
  EXPECT_THROW(slot_layout(shape, Granularity::kPerGroup, 2, 3), Error);  // 3 does not divide 4
  EXPECT_THROW(slot_layout(shape, Granularity::kPerChannel, 3, 0), Error);
}

TEST(UniformParams, ClosedFormScaleAndZeroPoint) {
  float s;
  int32_t z;
  params_for_range(-1.0, 3.0, 8, false, true, s, z);
  EXPECT_FLOAT_EQ(s, 4.0f / 255.0f);
  EXPECT_EQ(z, 64);  // round(1 / (4/255)) = round(63.75)
  params_for_range(-1.0, 3.0, 8, true, true, s, z);
  EXPECT_FLOAT_EQ(s, 3.0f / 127.0f);
  EXPECT_EQ(z, 0);
  params_for_range(0.5, 2.0, 4, false, true, s, z);  // widened to [0, 2]
  EXPECT_FLOAT_EQ(s, 2.0f / 15.0f);
  EXPECT_EQ(z, 0);
  EXPECT_EQ(qmin_for(4, true), -7);
  EXPECT_EQ(qmax_for(4, true), 7);
  EXPECT_EQ(qmax_for(16, false), 65535);
  EXPECT_THROW(qmax_for(1, false), Error);
}

class UniformPerChannel : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(UniformPerChannel, MatchesFloat64Reference) {
  const auto [bits, sym] = GetParam();
  const int64_t outer = 37, C = 5, inner = 11;
  std::vector<float> x = gaussian(outer * C * inner, 1.0, 7 + bits);
  std::vector<float> lap = laplace(x.size(), 0.3, 99);
  for (size_t i = 0; i < x.size(); ++i) x[i] += lap[i] + 0.2f * float((i / inner) % C);  // channel offsets
  const std::vector<int64_t> shape{outer, C, inner};
  UniformSpec spec{.bits = bits, .symmetric = sym, .gran = Granularity::kPerChannel, .axis = 1};
  const QParams p = calibrate(x, shape, spec);
  std::vector<float> y(x.size());
  fake_quant(x, y, p);
  const std::vector<double> ref = ref_fake_quant_per_channel(x, outer, C, inner, bits, sym);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-6 * std::max(1.0, std::abs(ref[i]))) << i;
  double mse = 0;
  for (size_t i = 0; i < x.size(); ++i) mse += (x[i] - ref[i]) * (x[i] - ref[i]);
  EXPECT_NEAR(quant_mse(x, p), mse / x.size(), 1e-9 * mse / x.size() + 1e-30);
}

INSTANTIATE_TEST_SUITE_P(Bits, UniformPerChannel,
                         ::testing::Combine(::testing::Values(2, 3, 4, 6, 8, 16), ::testing::Bool()));

TEST(UniformPerChannel, EightBitGaussianMseNearStepSquaredOver12) {
  // Per-channel 8-bit on a Gaussian: no clipping, error uniform over a step -> E = mean(s_c^2) / 12.
  const int64_t T = 20000, C = 4;
  std::vector<float> x(T * C);
  for (int64_t c = 0; c < C; ++c) {
    const std::vector<float> g = gaussian(T, 0.5 + c, 100 + c);
    for (int64_t t = 0; t < T; ++t) x[t * C + c] = g[t];
  }
  const std::vector<int64_t> shape{T, C};
  for (bool sym : {false, true}) {
    const QParams p = calibrate(x, shape, {.bits = 8, .symmetric = sym, .gran = Granularity::kPerChannel, .axis = 1});
    double expect = 0;
    for (float s : p.scale) expect += double(s) * s / 12.0;
    expect /= C;
    EXPECT_NEAR(quant_mse(x, p) / expect, 1.0, 0.03) << "symmetric=" << sym;
  }
}

TEST(UniformPerGroup, EachGroupUsesItsOwnMinMax) {
  const int64_t rows = 6, cols = 32, G = 8;
  std::vector<float> w = laplace(rows * cols, 0.1, 5);
  w[3] = 4.0f;  // an outlier only inflates group 0 of row 0
  const std::vector<int64_t> shape{rows, cols};
  const QParams p =
      calibrate(w, shape, {.bits = 4, .symmetric = true, .gran = Granularity::kPerGroup, .axis = 1, .group = G});
  ASSERT_EQ(p.scale.size(), size_t(rows * cols / G));
  for (int64_t g = 0; g < rows * cols / G; ++g) {
    double a = 0;
    for (int64_t k = 0; k < G; ++k) a = std::max(a, double(std::abs(w[g * G + k])));
    EXPECT_FLOAT_EQ(p.scale[g], float(a / 7));
  }
  // Group-wise beats per-channel (per-row) under that outlier.
  const QParams pc = calibrate(w, shape, {.bits = 4, .symmetric = true, .gran = Granularity::kPerChannel, .axis = 0});
  EXPECT_LT(quant_mse(w, p), quant_mse(w, pc));
}

TEST(UniformRange, PercentileClipsBothTails) {
  std::vector<float> x(1001);
  for (int i = 0; i <= 1000; ++i) x[i] = float(i) - 500.0f;  // -500 .. 500
  std::reverse(x.begin(), x.end());
  const std::vector<int64_t> shape{1001};
  const QParams p =
      calibrate(x, shape, {.bits = 8, .range = RangeMethod::kPercentile, .percentile = 99.0, .include_zero = false});
  // P99 = element 990 of the sorted list = 490, P1 = element 10 = -490.
  EXPECT_FLOAT_EQ(p.scale[0], 980.0f / 255.0f);
  const QParams ps =
      calibrate(x, shape, {.bits = 8, .symmetric = true, .range = RangeMethod::kPercentile, .percentile = 99.0});
  // |x| sorted: 0,1,1,2,2,...; index 990 -> 495.
  EXPECT_FLOAT_EQ(ps.scale[0], 495.0f / 127.0f);
}

double ref_sse(const std::vector<float>& x, double lo, double hi, int bits) {
  float s;
  int32_t z;
  params_for_range(lo, hi, bits, false, true, s, z);
  double e = 0;
  for (float v : x) {
    const double q = std::clamp(std::nearbyint(double(v) / s) + z, 0.0, std::pow(2.0, bits) - 1);
    e += std::pow(v - s * (q - z), 2);
  }
  return e;
}

TEST(UniformRange, MseSearchBeatsMinMaxOnLaplaceWithOutliers) {
  std::vector<float> x = laplace(20000, 1.0, 11);
  x[17] = 60.0f, x[400] = -45.0f, x[9000] = 52.0f;
  const std::vector<int64_t> shape{int64_t(x.size())};
  for (bool sym : {false, true}) {
    const double e_mm = quant_mse(x, calibrate(x, shape, {.bits = 4, .symmetric = sym}));
    const QParams pm = calibrate(x, shape, {.bits = 4, .symmetric = sym, .range = RangeMethod::kMse});
    const double e_mse = quant_mse(x, pm);
    const double e_omse = quant_mse(x, calibrate(x, shape, {.bits = 4, .symmetric = sym, .range = RangeMethod::kOmse}));
    const double e_pct = quant_mse(
        x, calibrate(x, shape, {.bits = 4, .symmetric = sym, .range = RangeMethod::kPercentile, .percentile = 99.9}));
    EXPECT_LT(e_mse, 0.5 * e_mm) << sym;  // outliers waste most of the 16 levels under min-max
    EXPECT_LE(e_omse, e_mse * (1 + 1e-12)) << sym;
    EXPECT_LT(e_pct, e_mm) << sym;
  }
  // The asymmetric search returns the argmin of the documented ratio grid (checked by brute force).
  const QParams pm = calibrate(x, shape, {.bits = 4, .range = RangeMethod::kMse});
  double best = 1e300;
  for (int k = 1; k <= 100; ++k) best = std::min(best, ref_sse(x, -45.0 * k / 100, 60.0 * k / 100, 4));
  EXPECT_NEAR(quant_mse(x, pm) * x.size(), best, 1e-9 * best);
}

TEST(UniformRange, OmsePerChannelNotWorseThanGridPerChannel) {
  const int64_t Cout = 8, Cin = 64;
  std::vector<float> w = laplace(Cout * Cin, 0.05, 21);
  for (int64_t o = 0; o < Cout; ++o) w[o * Cin + (o * 7) % Cin] *= 12.0f;
  const std::vector<int64_t> shape{Cout, Cin};
  for (bool sym : {false, true}) {
    UniformSpec s{.bits = 3, .symmetric = sym, .gran = Granularity::kPerChannel, .axis = 0, .range = RangeMethod::kMse};
    const double e_mse = quant_mse(w, calibrate(w, shape, s));
    s.range = RangeMethod::kOmse;
    const double e_omse = quant_mse(w, calibrate(w, shape, s));
    s.range = RangeMethod::kMinMax;
    const double e_mm = quant_mse(w, calibrate(w, shape, s));
    EXPECT_LE(e_omse, e_mse * (1 + 1e-12));
    EXPECT_LT(e_mse, e_mm);
  }
}

TEST(UniformCodes, IntegerPathsAgreeWithFakeQuant) {
  const std::vector<float> x = gaussian(3 * 50, 2.0, 3, 0.7);
  const std::vector<int64_t> shape{50, 3};
  std::vector<float> fq(x.size()), back(x.size());
  const QParams ps = calibrate(x, shape, {.bits = 8, .symmetric = true, .gran = Granularity::kPerChannel, .axis = 1});
  std::vector<int8_t> s8(x.size());
  quantize_s8(x, s8, ps);
  dequantize(std::span<const int8_t>(s8), back, ps);
  fake_quant(x, fq, ps);
  EXPECT_EQ(back, fq);
  EXPECT_GE(*std::min_element(s8.begin(), s8.end()), -127);

  const QParams pa = calibrate(x, shape, {.bits = 8});
  std::vector<uint8_t> u8(x.size());
  quantize_u8(x, u8, pa);
  dequantize(std::span<const uint8_t>(u8), back, pa);
  fake_quant(x, fq, pa);
  EXPECT_EQ(back, fq);
  EXPECT_EQ(*std::min_element(u8.begin(), u8.end()), 0);
  EXPECT_EQ(*std::max_element(u8.begin(), u8.end()), 255);
  EXPECT_THROW(quantize_s8(x, s8, pa), Error);
  EXPECT_THROW(quantize_u8(x, u8, ps), Error);

  const QParams p16 = calibrate(x, shape, {.bits = 16});
  std::vector<int32_t> q(x.size());
  quantize(x, q, p16);
  EXPECT_EQ(*std::max_element(q.begin(), q.end()), 65535);
  dequantize(std::span<const int32_t>(q), back, p16);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], 0.5 * p16.scale[0] * 1.0001);
}

TEST(UniformErrors, BadInputsThrow) {
  const std::vector<float> x(12, 1.0f);
  const std::vector<int64_t> shape{3, 4}, wrong{5, 4};
  EXPECT_THROW(calibrate(x, wrong, {}), Error);
  EXPECT_THROW(calibrate(x, shape, {.bits = 1}), Error);
  EXPECT_THROW(calibrate(x, shape, {.gran = Granularity::kPerGroup, .axis = 1, .group = 3}), Error);
  std::vector<float> nan = x;
  nan[2] = std::nanf("");
  EXPECT_THROW(calibrate(nan, shape, {}), Error);
  const QParams p = calibrate(x, shape, {});
  std::vector<float> small(5);
  EXPECT_THROW(fake_quant(x, small, p), Error);
  // A constant tensor round-trips exactly.
  std::vector<float> y(12);
  fake_quant(x, y, p);
  EXPECT_EQ(y, x);
  // NaN at inference maps to the code of 0 instead of an undefined float->int cast.
  fake_quant(nan, y, p);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 1.0f);
}

}  // namespace
}  // namespace wavtok::quant
