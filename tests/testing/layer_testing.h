// Helpers shared by the layer tests (nn/*_test.cc, and ptq/ tests that build tensors by hand): random tensors,
// GELU in float64, per-output-channel min-max weight scales.
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

}  // namespace wavtok::testing
