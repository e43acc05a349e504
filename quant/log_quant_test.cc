#include "quant/log_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.h"
#include "quant/test_data.h"
#include "quant/uniform.h"

namespace wavtok::quant {
namespace {

const std::vector<float>& softmax_data() {
  static const std::vector<float> a = testdata::softmax_rows(400, 128, 1);
  return a;
}

double mse(const std::vector<float>& x, const std::vector<double>& y) {
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (x[i] - y[i]) * (x[i] - y[i]);
  return e / x.size();
}

TEST(LogSqrt2, LevelsAndCodesMatchClosedForm) {
  const float s = 0.8f;
  const LogQParams p = make_log_sqrt2(s, 4, true);
  ASSERT_EQ(p.levels.size(), 16u);
  for (int q = 0; q < 15; ++q) {
    const double v = s * std::pow(2.0, -q / 2.0);
    EXPECT_NEAR(p.levels[q], v, 1e-7 * v) << q;
    EXPECT_EQ(p.code(float(v)), q) << q;  // each level encodes to itself
  }
  EXPECT_EQ(p.levels[15], 0.0f);
  EXPECT_EQ(p.code(1e-6f), 15);  // underflow -> exact zero
  EXPECT_EQ(p.code(0.0f), 15);
  EXPECT_EQ(p.code(5.0f), 0);  // above the scale saturates
  const LogQParams pc = make_log_sqrt2(s, 4, false);
  EXPECT_EQ(pc.code(1e-6f), 15);
  EXPECT_NEAR(pc.levels[15], s * std::pow(2.0, -7.5), 1e-9);
}

TEST(LogSqrt2, FakeQuantMatchesFloat64Formula) {
  const std::vector<float>& a = softmax_data();
  for (int bits : {3, 4, 6, 8}) {
    const LogQParams p = calibrate_log_sqrt2(a, {.bits = bits});
    std::vector<float> y(a.size());
    fake_quant(a, y, p);
    const double s = p.scale, top = std::pow(2.0, bits) - 1;
    for (size_t i = 0; i < a.size(); ++i) {
      const double q = std::max(0.0, std::nearbyint(-2.0 * std::log2(a[i] / s)));
      const double ref = q >= top ? 0.0 : s * std::pow(2.0, -q / 2);
      ASSERT_NEAR(y[i], ref, 1e-6 * ref + 1e-30) << bits << " " << i;
    }
    std::vector<uint8_t> codes(a.size());
    std::vector<float> back(a.size());
    quantize(a, codes, p);
    dequantize(codes, back, p);
    EXPECT_EQ(back, y);
  }
}

TEST(LogSqrt2, BeatsUniformFourBitOnSoftmax) {
  const std::vector<float>& a = softmax_data();
  const std::vector<int64_t> shape{int64_t(a.size())};
  const double e_log = quant_mse(a, calibrate_log_sqrt2(a, {.bits = 4}));
  const double e_uni = quant_mse(a, calibrate(a, shape, {.bits = 4}));
  const double e_uni_mse = quant_mse(a, calibrate(a, shape, {.bits = 4, .range = RangeMethod::kMse}));
  std::printf("softmax 4-bit MSE: uniform min-max %.3g, uniform mse-search %.3g, log-sqrt2 %.3g\n", e_uni, e_uni_mse,
              e_log);
  EXPECT_LT(e_log, 0.5 * e_uni);
  EXPECT_LT(e_log, e_uni_mse);
}

TEST(AdaLog, LevelsMatchAdaptiveBaseWithinMantissaRounding) {
  const float s = 1.0f;
  for (int k : {7, 16, 32, 45}) {
    const LogQParams p = make_adalog(s, k, 32, 5, true, 8);
    for (int q = 0; q < 31; ++q) {
      const double v = std::pow(2.0, -double(q) * k / 32);
      EXPECT_NEAR(p.levels[q], v, std::ldexp(v, -8)) << k << " " << q;
      if (k == 32) {
        EXPECT_EQ(p.levels[q], float(v));  // integer exponents are exact shifts
      }
    }
    EXPECT_EQ(p.levels[31], 0.0f);
  }
  // Code = round(-log2(x) * r / k).
  const LogQParams p = make_adalog(2.0f, 20, 32, 4, true, 8);
  EXPECT_EQ(p.code(float(2.0 * std::pow(2.0, -3 * 20 / 32.0))), 3);
  EXPECT_EQ(p.code(float(2.0 * std::pow(2.0, -3.4 * 20 / 32.0))), 3);
  EXPECT_EQ(p.code(float(2.0 * std::pow(2.0, -3.6 * 20 / 32.0))), 4);
}

TEST(AdaLog, SearchedBaseBeatsFixedLogSqrt2OnSoftmax) {
  const std::vector<float>& a = softmax_data();
  for (int bits : {3, 4}) {
    const LogQParams ada = calibrate_adalog(a, {.bits = bits});
    const double e_ada = quant_mse(a, ada);
    const double e_l2 = quant_mse(a, calibrate_log_sqrt2(a, {.bits = bits, .search = false}));
    const double e_l2s = quant_mse(a, calibrate_log_sqrt2(a, {.bits = bits}));
    std::printf("softmax %d-bit MSE: log-sqrt2 %.3g, log-sqrt2 searched %.3g, AdaLog %.3g (base 2^(%d/%d), s=%.3f)\n",
                bits, e_l2, e_l2s, e_ada, ada.k, ada.r, ada.scale);
    EXPECT_LT(e_ada, e_l2);
    EXPECT_LT(e_ada, 1.05 * e_l2s);
    // Against the float64 form of the same quantizer (within the mantissa rounding).
    std::vector<float> y(a.size());
    fake_quant(a, y, ada);
    const double top = std::pow(2.0, bits) - 1;
    for (size_t i = 0; i < a.size(); ++i) {
      const double q = std::max(0.0, std::nearbyint(-std::log2(a[i] / double(ada.scale)) * ada.r / ada.k));
      const double ref = q >= top ? 0.0 : ada.scale * std::pow(2.0, -q * ada.k / ada.r);
      ASSERT_NEAR(y[i], ref, std::ldexp(ref, -8) + 1e-30);
    }
  }
}

std::vector<float> gelu_data(size_t n, uint32_t seed) {
  std::vector<float> x = testdata::gaussian(n, 1.5, seed, -0.5);
  for (float& v : x) v = float(0.5 * v * (1 + std::erf(v / std::numbers::sqrt2)));
  return x;
}

TEST(AdaLog, PostGeluWithShiftAndBiasFold) {
  const std::vector<float> x = gelu_data(40000, 4);
  const float mn = *std::min_element(x.begin(), x.end());
  ASSERT_LT(mn, -0.1f);
  const LogQParams p = calibrate_adalog(x, {.bits = 4, .shift_negative = true});
  EXPECT_FLOAT_EQ(p.shift, -mn);
  std::vector<float> y(x.size());
  fake_quant(x, y, p);
  EXPECT_NEAR(*std::min_element(y.begin(), y.end()), mn, 1e-6);  // the minimum is exact (zero code)
  const double e_ada = quant_mse(x, p);
  const std::vector<int64_t> shape{int64_t(x.size())};
  const double e_uni = quant_mse(x, calibrate(x, shape, {.bits = 4}));
  const double e_uni_mse = quant_mse(x, calibrate(x, shape, {.bits = 4, .range = RangeMethod::kMse}));
  std::printf("post-GELU 4-bit MSE: uniform min-max %.3g, uniform mse-search %.3g, AdaLog+shift %.3g\n", e_uni,
              e_uni_mse, e_ada);
  EXPECT_LT(e_ada, e_uni);

  // Integer pipeline: feed levels[q] (no shift) to the layer and fold -W c into its bias.
  const int64_t cout = 3, cin = 8;
  const std::vector<float> w = testdata::gaussian(cout * cin, 1.0, 9);
  std::vector<float> b{0.1f, -0.2f, 0.3f}, b2 = b;
  fold_shift_into_bias(w, cout, cin, p.shift, b2);
  std::vector<uint8_t> codes(cin);
  quantize(std::span<const float>(x).first(cin), codes, p);
  for (int64_t o = 0; o < cout; ++o) {
    double ref = b[o], folded = b2[o];
    for (int64_t j = 0; j < cin; ++j) {
      ref += double(w[o * cin + j]) * y[j];  // dequantized activation, shift removed
      folded += double(w[o * cin + j]) * p.levels[codes[j]];
    }
    EXPECT_NEAR(folded, ref, 1e-5);
  }
}

TEST(TanQ, LevelsAndCodesMatchFormula) {
  const double a = 2.2, m = 0.6;
  const LogQParams p = make_tanq(0.9f, a, m, 4);
  const double t0 = std::tan(-a * m), t1 = std::tan(a * (1 - m)), d = (t1 - t0) / 15;
  EXPECT_EQ(p.levels[0], 0.0f);
  EXPECT_EQ(p.levels[15], 0.9f);
  for (int q = 0; q < 16; ++q) {
    const double v = 0.9 * (m + std::atan(t0 + q * d) / a);
    EXPECT_NEAR(p.levels[q], v, 1e-6) << q;
    EXPECT_EQ(p.code(float(v)), q);
  }
  // Centred (m = 0.5): levels are dense at both ends and sparse in the middle.
  const LogQParams c = make_tanq(1.0f, 2.5, 0.5, 4);
  EXPECT_LT(2.5 * (c.levels[1] - c.levels[0]), c.levels[8] - c.levels[7]);
  EXPECT_NEAR(c.levels[1] - c.levels[0], c.levels[15] - c.levels[14], 1e-6);
  EXPECT_THROW(make_tanq(1.0f, 4.0, 0.5, 4), Error);  // a m >= pi/2
}

TEST(TanQ, BeatsLogSqrt2AndUniformOnSoftmax) {
  const std::vector<float>& a = softmax_data();
  const std::vector<int64_t> shape{int64_t(a.size())};
  for (int bits : {3, 4}) {
    const LogQParams t = calibrate_tanq(a, {.bits = bits});
    const double e_tan = quant_mse(a, t);
    const double e_l2 = quant_mse(a, calibrate_log_sqrt2(a, {.bits = bits}));
    const double e_uni = quant_mse(a, calibrate(a, shape, {.bits = bits, .range = RangeMethod::kMse}));
    std::printf("softmax %d-bit MSE: uniform mse-search %.3g, log-sqrt2 %.3g, TanQ %.3g (a=%.3f m=%.3f)\n", bits, e_uni,
                e_l2, e_tan, t.tan_a, t.tan_m);
    EXPECT_LT(e_tan, e_l2);
    EXPECT_LT(e_tan, e_uni);
    std::vector<float> y(a.size());
    fake_quant(a, y, t);
    std::vector<double> ref(a.size());
    const double L1 = std::pow(2.0, bits) - 1, s = t.scale;
    const double t0 = std::tan(-t.tan_a * t.tan_m), t1 = std::tan(t.tan_a * (1 - t.tan_m)), d = (t1 - t0) / L1;
    for (size_t i = 0; i < a.size(); ++i) {
      const double q = std::clamp(std::nearbyint((std::tan(t.tan_a * (a[i] / s - t.tan_m)) - t0) / d), 0.0, L1);
      ref[i] = s * (t.tan_m + std::atan(t0 + q * d) / t.tan_a);
    }
    EXPECT_NEAR(mse(a, ref), e_tan, 1e-6 * e_tan);
  }
}

TEST(LogQuant, BadInputsThrow) {
  EXPECT_THROW(make_log_sqrt2(0.0f, 4), Error);
  EXPECT_THROW(make_log_sqrt2(1.0f, 9), Error);
  const std::vector<float> neg(10, -1.0f);
  EXPECT_THROW(calibrate_log_sqrt2(neg), Error);
  const std::vector<float> empty;
  EXPECT_THROW(calibrate_tanq(empty), Error);
}

}  // namespace
}  // namespace wavtok::quant
