// Deterministic sample generators shared by the quantizer tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace wavtok::quant::testdata {

inline std::vector<float> gaussian(size_t n, double sigma, uint32_t seed, double mean = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(mean, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = float(d(rng));
  return v;
}

inline std::vector<float> laplace(size_t n, double b, uint32_t seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> e(1.0 / b);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (float& x : v) x = float(sign(rng) ? e(rng) : -e(rng));
  return v;
}

// Rows of softmax(logits / temperature) over `tokens` keys: power-law-like attention maps.
// Temperatures vary per row so some rows are peaky (max near 1) and most are flat.
inline std::vector<float> softmax_rows(size_t rows, size_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> out(rows * tokens);
  std::vector<double> l(tokens);
  for (size_t r = 0; r < rows; ++r) {
    const double sharp = 0.5 + 5.5 * std::pow(u(rng), 3.0);
    double mx = -1e300, sum = 0;
    for (double& x : l) x = sharp * g(rng), mx = std::max(mx, x);
    for (double& x : l) x = std::exp(x - mx), sum += x;
    for (size_t t = 0; t < tokens; ++t) out[r * tokens + t] = float(l[t] / sum);
  }
  return out;
}

}  // namespace wavtok::quant::testdata
