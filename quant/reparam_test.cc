#include "quant/reparam.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/test_data.h"

namespace wavtok::quant {
namespace {

struct Net {
  int64_t T = 96, C = 24, Cout = 10;
  std::vector<float> x, gamma, beta, w, b;
};

Net make_net(uint32_t seed) {
  Net n;
  n.x = testdata::gaussian(n.T * n.C, 1.0, seed);
  n.gamma = testdata::gaussian(n.C, 0.5, seed + 1, 1.0);
  n.beta = testdata::gaussian(n.C, 0.5, seed + 2);
  n.gamma[3] = 9.0f, n.beta[3] = 4.0f;  // outlier channels: the reason for per-channel params
  n.gamma[17] = -6.0f, n.beta[17] = -3.0f;
  n.w = testdata::gaussian(n.Cout * n.C, 0.2, seed + 3);
  n.b = testdata::gaussian(n.Cout, 0.1, seed + 4);
  return n;
}

// float64 LayerNorm over the channel axis.
std::vector<double> layernorm(const Net& n, std::span<const float> gamma, std::span<const float> beta) {
  std::vector<double> y(n.T * n.C);
  for (int64_t t = 0; t < n.T; ++t) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < n.C; ++c) mean += n.x[t * n.C + c];
    mean /= n.C;
    for (int64_t c = 0; c < n.C; ++c) var += std::pow(n.x[t * n.C + c] - mean, 2);
    var /= n.C;
    for (int64_t c = 0; c < n.C; ++c)
      y[t * n.C + c] = (n.x[t * n.C + c] - mean) / std::sqrt(var + 1e-6) * gamma[c] + beta[c];
  }
  return y;
}

// float64 quantize-dequantize with params per channel (size C) or per tensor (size 1);
// reports codes and how close each value came to a rounding tie.
std::vector<double> quant_ref(const std::vector<double>& x, int64_t C, const QParams& p, std::vector<int>* codes,
                              std::vector<double>* tie_gap) {
  std::vector<double> y(x.size());
  codes->resize(x.size()), tie_gap->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t k = p.scale.size() == 1 ? 0 : i % C;
    const double s = p.scale[k], z = p.zero_point[k], v = x[i] / s;
    (*tie_gap)[i] = std::abs(std::abs(v - std::floor(v)) - 0.5);
    const double q = std::clamp(std::nearbyint(v) + z, double(p.qmin()), double(p.qmax()));
    (*codes)[i] = int(q);
    y[i] = s * (q - z);
  }
  return y;
}

std::vector<double> linear(const std::vector<double>& x, int64_t T, int64_t C, std::span<const float> w,
                           std::span<const float> b, int64_t Cout) {
  std::vector<double> y(T * Cout);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < Cout; ++o) {
      double acc = b[o];
      for (int64_t c = 0; c < C; ++c) acc += double(w[o * C + c]) * x[t * C + c];
      y[t * Cout + o] = acc;
    }
  return y;
}

class Reparam : public ::testing::TestWithParam<std::tuple<int, SharedScale>> {};

TEST_P(Reparam, PerTensorAfterFoldEqualsPerChannelBefore) {
  const auto [bits, shared] = GetParam();
  const Net n = make_net(40 + bits);
  const std::vector<double> X = layernorm(n, n.gamma, n.beta);
  const std::vector<float> Xf(X.begin(), X.end());
  const std::vector<int64_t> shape{n.T, n.C};
  const QParams pc = calibrate(Xf, shape, {.bits = bits, .gran = Granularity::kPerChannel, .axis = 1});
  const LnReparam rp = reparam_layernorm(pc, n.gamma, n.beta, n.w, n.b, n.Cout, shared);
  ASSERT_EQ(rp.act.scale.size(), 1u);

  std::vector<int> codes_a, codes_b;
  std::vector<double> gap_a, gap_b;
  const std::vector<double> Ya = linear(quant_ref(X, n.C, pc, &codes_a, &gap_a), n.T, n.C, n.w, n.b, n.Cout);
  const std::vector<double> Xb = layernorm(n, rp.gamma, rp.beta);
  const std::vector<double> Yb =
      linear(quant_ref(Xb, n.C, rp.act, &codes_b, &gap_b), n.T, n.C, rp.weight, rp.bias, n.Cout);

  // The fold is exact in real arithmetic; float storage of gamma'/beta' can only flip a code that
  // sat within ~1e-5 of a rounding tie, so tokens holding such a value are excluded (and counted).
  int64_t skipped = 0;
  double max_err = 0, max_y = 0;
  for (int64_t t = 0; t < n.T; ++t) {
    bool near_tie = false;
    for (int64_t c = 0; c < n.C; ++c) near_tie |= gap_a[t * n.C + c] < 1e-4;
    if (near_tie) {
      ++skipped;
      continue;
    }
    for (int64_t c = 0; c < n.C; ++c)
      ASSERT_EQ(codes_a[t * n.C + c] - pc.zero_point[c], codes_b[t * n.C + c] - rp.act.zero_point[0] - rp.r2[c]);
    for (int64_t o = 0; o < n.Cout; ++o) {
      max_err = std::max(max_err, std::abs(Ya[t * n.Cout + o] - Yb[t * n.Cout + o]));
      max_y = std::max(max_y, std::abs(Ya[t * n.Cout + o]));
    }
  }
  EXPECT_LE(skipped, n.T / 20);
  EXPECT_LT(max_err, 1e-5 * std::max(1.0, max_y));

  // The shared scale is the documented statistic of the channel scales.
  std::vector<double> s(pc.scale.begin(), pc.scale.end());
  std::sort(s.begin(), s.end());
  double mean = 0;
  for (double v : s) mean += v / s.size();
  const double expect = shared == SharedScale::kMean ? mean : 0.5 * (s[n.C / 2 - 1] + s[n.C / 2]);
  EXPECT_NEAR(rp.act.scale[0], expect, 1e-6 * expect);
}

INSTANTIATE_TEST_SUITE_P(Bits, Reparam,
                         ::testing::Combine(::testing::Values(4, 6, 8),
                                            ::testing::Values(SharedScale::kMean, SharedScale::kMedian)));

TEST(Reparam, RejectsWrongLayout) {
  const Net n = make_net(1);
  std::vector<float> X(n.T * n.C, 1.0f);
  const std::vector<int64_t> shape{n.T, n.C};
  const QParams pt = calibrate(X, shape, {.bits = 8});
  EXPECT_THROW(reparam_layernorm(pt, n.gamma, n.beta, n.w, n.b, n.Cout), Error);
  const QParams pc = calibrate(X, shape, {.bits = 8, .gran = Granularity::kPerChannel, .axis = 1});
  EXPECT_THROW(reparam_layernorm(pc, n.gamma, n.beta, n.w, n.b, n.Cout + 1), Error);
}

}  // namespace
}  // namespace wavtok::quant
