// Helpers shared by the layer tests (nn/*_test.cc, and ptq/ tests that build tensors by hand): random tensors,
// GELU in float64, per-output-channel min-max weight scales, softmax attention probabilities in float64.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wavtok::testing {

// A tensor of the given shape filled with normal(mean, scale) draws from rng, in element order.
inline Tensor randn(std::vector<int64_t> shape, std::mt19937& rng, float scale = 1.0f, float mean = 0.0f) {
  Tensor t(std::move(shape));
  std::normal_distribution<float> nd(mean, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = nd(rng);
  return t;
}

// The exact (erf) GELU, in float64.
inline double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// Per-output-channel symmetric min-max int8 weight scales of w [cout, ...]: max |w| of the channel / 127.
inline std::vector<float> weight_scales(const Tensor& w, int cout) {
  const int64_t per = w.numel() / cout;
  std::vector<float> s(cout);
  for (int o = 0; o < cout; ++o) {
    float m = 0;
    for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(w[o * per + i]));
    s[o] = m / 127.0f;
  }
  return s;
}

// softmax(q k^T / sqrt(C)) for q, k [T, C], row by row in float64 (max subtracted): P[i * T + j].
inline std::vector<double> attention_probs(const Tensor& q, const Tensor& k, int64_t T, int C) {
  std::vector<double> p(size_t(T * T));
  for (int64_t i = 0; i < T; ++i) {
    std::vector<double> s(T);
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < T; ++j) {
      double d = 0;
      for (int c = 0; c < C; ++c) d += double(q[i * C + c]) * k[j * C + c];
      s[j] = d / std::sqrt(double(C));
      mx = std::max(mx, s[j]);
    }
    for (auto& e : s) sum += (e = std::exp(e - mx));
    for (int64_t j = 0; j < T; ++j) p[i * T + j] = s[j] / sum;
  }
  return p;
}

}  // namespace wavtok::testing
