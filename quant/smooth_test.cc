#include "quant/smooth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/test_data.h"

namespace wavtok::quant {
namespace {

struct Layer {
  int64_t T = 384, cin = 48, cout = 24;
  std::vector<float> x, w, b;
};

// Asymmetric, outlier-heavy activations: a few channels sit far from zero with large spread.
Layer make_layer(uint32_t seed) {
  Layer l;
  l.x = testdata::gaussian(l.T * l.cin, 1.0, seed, 0.4);
  const std::vector<float> lap = testdata::laplace(l.T, 4.0, seed + 1);
  const std::vector<float> g = testdata::gaussian(l.T, 3.0, seed + 2);
  for (int64_t t = 0; t < l.T; ++t) {
    l.x[t * l.cin + 5] = 30.0f + g[t];
    l.x[t * l.cin + 11] = -25.0f + 0.5f * g[t];
    l.x[t * l.cin + 30] = 12.0f + lap[t];
    l.x[t * l.cin + 41] = std::abs(lap[t]) * 2.0f;  // one-sided
  }
  l.w = testdata::gaussian(l.cout * l.cin, 0.15, seed + 3);
  l.b = testdata::gaussian(l.cout, 0.1, seed + 4);
  return l;
}

TEST(SmoothQuantBias, FoldedLayerEqualsOriginalInFloat) {
  const Layer l = make_layer(3);
  const std::vector<double> y = linear_f64(l.x, l.T, l.cin, l.w, l.b, l.cout);
  double ymax = 0;
  for (double v : y) ymax = std::max(ymax, std::abs(v));
  for (double alpha : {0.0, 0.5, 0.85, 1.0}) {
    for (bool use_bias : {false, true}) {
      const SmoothResult r = smooth_quant_bias(l.x, l.T, l.cin, l.w, l.b, l.cout, alpha, use_bias);
      std::vector<float> xs(l.x.size());
      apply_smooth(l.x, l.T, l.cin, r, xs);
      const std::vector<double> ys = linear_f64(xs, l.T, l.cin, r.weight, r.bias, l.cout);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(ys[i], y[i], 1e-5 * ymax) << alpha << " " << use_bias << " " << i;
      if (use_bias) {
        // Shifted channels are symmetric: max == -min per channel.
        for (int64_t j : {5, 11, 30, 41}) {
          double lo = 1e30, hi = -1e30;
          for (int64_t t = 0; t < l.T; ++t)
            lo = std::min(lo, double(xs[t * l.cin + j])), hi = std::max(hi, double(xs[t * l.cin + j]));
          EXPECT_NEAR(hi, -lo, 1e-5 * hi) << j;
        }
      }
      // Closed-form scale of one channel.
      double amax = 0, wmax = 0, lo = 1e30, hi = -1e30;
      for (int64_t t = 0; t < l.T; ++t)
        lo = std::min(lo, double(l.x[t * l.cin + 5])), hi = std::max(hi, double(l.x[t * l.cin + 5]));
      amax = use_bias ? (hi - lo) / 2 : std::max(hi, -lo);
      for (int64_t o = 0; o < l.cout; ++o) wmax = std::max(wmax, double(std::abs(l.w[o * l.cin + 5])));
      EXPECT_NEAR(r.scale[5], std::pow(amax, alpha) / std::pow(wmax, 1 - alpha), 1e-5 * r.scale[5]);
    }
  }
}

TEST(SmoothQuantBias, LayerNormFoldProducesSmoothedActivation) {
  const int64_t T = 8, C = 6;
  const std::vector<float> n = testdata::gaussian(T * C, 1.0, 8);  // normalised LN input
  std::vector<float> gamma = testdata::gaussian(C, 1.0, 9, 1.0), beta = testdata::gaussian(C, 2.0, 10);
  std::vector<float> x(T * C);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) x[t * C + c] = n[t * C + c] * gamma[c] + beta[c];
  const std::vector<float> w = testdata::gaussian(4 * C, 0.3, 11), b(4, 0.0f);
  const SmoothResult r = smooth_quant_bias(x, T, C, w, b, 4, 0.5);
  std::vector<float> xs(x.size());
  apply_smooth(x, T, C, r, xs);
  fold_into_layernorm(gamma, beta, r);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c)
      EXPECT_NEAR(n[t * C + c] * gamma[c] + beta[c], xs[t * C + c], 1e-5 * (1 + std::abs(xs[t * C + c])));
}

TEST(SmoothQuantBias, OptMReducesQuantizedOutputError) {
  const Layer l = make_layer(5);
  const std::vector<double> y = linear_f64(l.x, l.T, l.cin, l.w, l.b, l.cout);
  for (int bits : {8, 6}) {
    const LayerQuantSpec q{.w_bits = bits, .a_bits = bits, .a_symmetric = true};
    LayerQuantSpec qa = q;
    qa.a_symmetric = false;
    const double e_plain = quantized_layer_mse(l.x, l.T, l.cin, l.w, l.b, l.cout, y, q);
    const double e_plain_asym = quantized_layer_mse(l.x, l.T, l.cin, l.w, l.b, l.cout, y, qa);
    std::vector<float> xs(l.x.size());
    const SmoothResult sq = search_smooth_alpha(l.x, l.T, l.cin, l.w, l.b, l.cout, q, false);
    apply_smooth(l.x, l.T, l.cin, sq, xs);
    const double e_sq = quantized_layer_mse(xs, l.T, l.cin, sq.weight, sq.bias, l.cout, y, q);
    const SmoothResult sqb = search_smooth_alpha(l.x, l.T, l.cin, l.w, l.b, l.cout, q, true);
    apply_smooth(l.x, l.T, l.cin, sqb, xs);
    const double e_sqb = quantized_layer_mse(xs, l.T, l.cin, sqb.weight, sqb.bias, l.cout, y, q);
    std::printf("W%dA%d output MSE: plain sym %.3g, plain asym %.3g, SQ %.3g (alpha %.2f), SQ-b %.3g (alpha %.2f)\n",
                bits, bits, e_plain, e_plain_asym, e_sq, sq.alpha, e_sqb, sqb.alpha);
    EXPECT_LT(e_sqb, 0.5 * e_plain);
    EXPECT_LT(e_sqb, e_plain_asym);
    EXPECT_LT(e_sqb, e_sq);

    // OPT-m returns the grid argmin.
    double best = 1e300;
    for (int i = 0; i <= 20; ++i) {
      const SmoothResult r = smooth_quant_bias(l.x, l.T, l.cin, l.w, l.b, l.cout, i * 0.05, true);
      apply_smooth(l.x, l.T, l.cin, r, xs);
      best = std::min(best, quantized_layer_mse(xs, l.T, l.cin, r.weight, r.bias, l.cout, y, q));
    }
    EXPECT_DOUBLE_EQ(best, e_sqb);
  }
}

TEST(SmoothQuantBias, BadInputsThrow) {
  const Layer l = make_layer(1);
  EXPECT_THROW(smooth_quant_bias(l.x, l.T + 1, l.cin, l.w, l.b, l.cout, 0.5), Error);
  EXPECT_THROW(smooth_quant_bias(l.x, l.T, l.cin, l.w, l.b, l.cout, 1.5), Error);
}

}  // namespace
}  // namespace wavtok::quant
