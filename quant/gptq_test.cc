// GPTQ rounding (quant/gptq.h) against a closed form, against the algorithm written the long way (explicit inverses
// of the free columns' moment after every step, float64) and against rounding to nearest, and the second moment
// against a direct sum.
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"

namespace wavtok::quant {
namespace {

// sum_o d_o^T H d_o, d = w - codes * step (float64).
double output_error(const std::vector<float>& w, const std::vector<int32_t>& codes, const std::vector<float>& step,
                    int64_t rows, int64_t n, const std::vector<double>& h) {
  double e = 0;
  std::vector<double> d(static_cast<size_t>(n));
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t j = 0; j < n; ++j) d[j] = double(w[o * n + j]) - double(codes[o * n + j]) * step[o * n + j];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) e += d[i] * h[i * n + j] * d[j];
  }
  return e;
}

// Gauss-Jordan inverse of a small symmetric positive definite matrix (float64).
std::vector<double> inverse(std::vector<double> a, int64_t n) {
  std::vector<double> inv(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = a[c * n + c];
    for (int64_t j = 0; j < n; ++j) a[c * n + j] /= p, inv[c * n + j] /= p;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      for (int64_t j = 0; j < n; ++j) a[r * n + j] -= f * a[c * n + j], inv[r * n + j] -= f * inv[c * n + j];
    }
  }
  return inv;
}

// GPTQ of one row the long way: round the next column of `order`, then move every free column k by
// -e [Hf^-1]_{k,j} / [Hf^-1]_{j,j}, Hf the moment over the columns still free (j included).
std::vector<int32_t> obs_reference(std::vector<double> w, const std::vector<double>& step, int32_t qmax,
                                   const std::vector<double>& h, int64_t n, const std::vector<int64_t>& order) {
  std::vector<int32_t> codes(static_cast<size_t>(n));
  std::vector<int64_t> free = order;
  while (!free.empty()) {
    const int64_t m = int64_t(free.size()), j = free[0];
    std::vector<double> hf(size_t(m * m));
    for (int64_t a = 0; a < m; ++a)
      for (int64_t b = 0; b < m; ++b) hf[a * m + b] = h[free[a] * n + free[b]];
    const std::vector<double> hi = inverse(hf, m);
    const double q = std::clamp(std::nearbyint(w[j] / step[j]), double(-qmax), double(qmax));
    codes[j] = int32_t(q);
    const double e = (w[j] - q * step[j]) / hi[0];
    for (int64_t a = 0; a < m; ++a) w[free[a]] -= e * hi[a * m];
    free.erase(free.begin());
  }
  return codes;
}

// Correlated inputs x = z A, A = I + 0.5 N(0, 1): H = E[x x^T] over `count` samples.
std::vector<double> correlated_moment(int64_t n, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> a(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = (i == j) + 0.5 * nd(rng);
  std::vector<double> h(size_t(n * n), 0.0), z(static_cast<size_t>(n)), x(static_cast<size_t>(n));
  for (int s = 0; s < count; ++s) {
    for (auto& v : z) v = nd(rng);
    for (int64_t j = 0; j < n; ++j) {
      x[j] = 0;
      for (int64_t i = 0; i < n; ++i) x[j] += z[i] * a[i * n + j];
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) h[i * n + j] += x[i] * x[j] / count;
  }
  return h;
}

TEST(Gptq, TwoCorrelatedInputsClosedForm) {
  // H = [[1, 0.9], [0.9, 1]], unit steps, columns in order, no damping: w0 = 0.4 rounds to 0; its error 0.4 moves
  // w1 to 0.3 + 0.4 * 0.9 = 0.66, which rounds to 1. Output error of (0.4, -0.7): 0.146; of rounding to nearest
  // (0, 0): 0.466.
  const std::vector<float> w = {0.4f, 0.3f}, step = {1.0f, 1.0f};
  const std::vector<int32_t> qmax = {7, 7};
  const std::vector<double> h = {1.0, 0.9, 0.9, 1.0};
  const auto codes = gptq_round(w, 1, 2, step, qmax, h, {.damp = 0.0, .act_order = false});
  EXPECT_EQ(codes, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(output_error(w, codes, step, 1, 2, h), 0.146, 1e-6);
  EXPECT_NEAR(output_error(w, {0, 0}, step, 1, 2, h), 0.466, 1e-6);
}

TEST(Gptq, UncorrelatedInputsRoundToNearest) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> u(0.1f, 0.4f);
  const int64_t rows = 16, n = 40;
  std::vector<float> w(size_t(rows * n)), step(w.size());
  for (auto& v : w) v = nd(rng);
  for (auto& s : step) s = u(rng);
  std::vector<double> h(size_t(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] = 0.5 + double(j % 7);
  const std::vector<int32_t> qmax(w.size(), 7);
  const auto codes = gptq_round(w, rows, n, step, qmax, h);
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_EQ(codes[i], int32_t(std::clamp(std::nearbyint(w[i] / step[i]), -7.0f, 7.0f))) << i;
}

TEST(Gptq, EqualsTheExplicitUpdatesAndBeatsRounding) {
  const int64_t rows = 16, n = 6;
  const int32_t qmax = 3;
  const std::vector<double> h = correlated_moment(n, 4000, 3);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.4f);
  std::vector<float> w(size_t(rows * n)), step(w.size(), 0.5f);
  for (auto& v : w) v = nd(rng);
  const std::vector<int32_t> qm(w.size(), qmax);
  const auto codes = gptq_round(w, rows, n, step, qm, h, {.damp = 0.0});
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return h[a * n + a] > h[b * n + b]; });
  std::vector<int32_t> nearest(w.size());
  for (size_t i = 0; i < w.size(); ++i) nearest[i] = int32_t(std::clamp(std::nearbyint(w[i] / step[i]), -3.0f, 3.0f));
  for (int64_t o = 0; o < rows; ++o) {
    std::vector<double> wr(w.begin() + o * n, w.begin() + (o + 1) * n), sr(size_t(n), 0.5);
    const auto ref = obs_reference(wr, sr, qmax, h, n, order);
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(codes[o * n + j], ref[j]) << "row " << o << " column " << j;
  }
  const double e_g = output_error(w, codes, step, rows, n, h), e_r = output_error(w, nearest, step, rows, n, h);
  std::printf("output error: rounding to nearest %.4f, GPTQ %.4f\n", e_r, e_g);  // measured 5.80, 3.11
  EXPECT_LT(e_g, 0.8 * e_r);
}

TEST(Gptq, CodesStayInTheirOwnRanges) {
  // Per-weight ranges (mixed widths in one row): large weights clamp at their own qmax, not another's.
  const int64_t rows = 4, n = 8;
  const std::vector<double> h = correlated_moment(n, 2000, 7);
  std::vector<float> w(size_t(rows * n)), step(w.size(), 0.1f);
  std::vector<int32_t> qmax(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = (i % 2 ? 5.0f : -5.0f) * float(1 + i % 3);
    qmax[i] = i % 4 == 0 ? 1 : i % 4 == 1 ? 3 : i % 4 == 2 ? 7 : 127;
  }
  const auto codes = gptq_round(w, rows, n, step, qmax, h);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_LE(std::abs(codes[i]), qmax[i]) << i;
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 127) + std::count(codes.begin(), codes.end(), -127), 0);
}

TEST(Gptq, SecondMomentIsTheMeanOuterProduct) {
  const int64_t n = 5, m = 37;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::vector<float> cols(size_t(n * m));
  for (auto& v : cols) v = nd(rng);
  SecondMoment s(n);
  s.add(std::span<const float>(cols).first(size_t(n * 20)), 20);  // in two parts
  s.add(std::span<const float>(cols).subspan(size_t(n * 20)), m - 20);
  EXPECT_EQ(s.count(), m);
  const auto h = s.mean();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t t = 0; t < m; ++t) want += double(cols[t * n + i]) * cols[t * n + j];
      EXPECT_NEAR(h[i * n + j], want / m, 1e-12) << i << "," << j;
    }
  // the moment of u = (x - shift) / scale, from the same sums, against a direct sum over the transformed columns
  const std::vector<double> shift = {0.5, -1.0, 0.0, 2.0, 0.25}, scale = {2.0, 0.5, 1.0, 4.0, -3.0};
  const auto hu = s.mean(shift, scale);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      for (int64_t t = 0; t < m; ++t)
        want += (cols[t * n + i] - shift[i]) / scale[i] * ((cols[t * n + j] - shift[j]) / scale[j]);
      EXPECT_NEAR(hu[i * n + j], want / m, 1e-12) << i << "," << j;
    }
  EXPECT_THROW(s.mean(shift, std::vector<double>{1, 1, 0, 1, 1}), Error);
  const std::vector<float> w = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(relative_output_error(w, w, 1, n, h), 0.0);
  EXPECT_NEAR(relative_output_error(w, std::vector<float>(5, 0.0f), 1, n, h), 1.0, 1e-12);
}

TEST(Gptq, BadInputIsRefused) {
  const std::vector<double> h = {1.0, 0.0, 0.0, 1.0};
  const std::vector<float> w = {0.5f, 0.5f}, step = {1.0f, 1.0f};
  const std::vector<int32_t> qmax = {7, 7};
  EXPECT_THROW(gptq_round(w, 1, 3, step, qmax, h), Error);                                        // sizes
  EXPECT_THROW(gptq_round(w, 1, 2, std::vector<float>{1.0f, 0.0f}, qmax, h), Error);              // step 0
  EXPECT_THROW(gptq_round(std::vector<float>{NAN, 0.5f}, 1, 2, step, qmax, h), Error);            // NaN weight
  EXPECT_THROW(gptq_round(w, 1, 2, step, qmax, std::vector<double>{1.0, NAN, NAN, 1.0}), Error);  // NaN moment
  EXPECT_THROW(gptq_round(w, 1, 2, step, std::vector<int32_t>{0, 7}, h), Error);                  // empty range
  EXPECT_THROW(SecondMoment(2).mean(), Error);                                                    // nothing seen
  // a moment of zeros (inputs that never move) still rounds
  const auto c = gptq_round(w, 1, 2, step, qmax, std::vector<double>{0.0, 0.0, 0.0, 0.0});
  EXPECT_EQ(c.size(), 2u);
  // a singular moment without damping (two inputs that always move together) is damped until it factorizes
  const auto d = gptq_round(w, 1, 2, step, qmax, std::vector<double>{1.0, 1.0, 1.0, 1.0}, {.damp = 0.0});
  EXPECT_EQ(d.size(), 2u);
}

}  // namespace
}  // namespace wavtok::quant
