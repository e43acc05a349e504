#include "quant/mixed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "quant/test_data.h"
#include "quant/uniform.h"

namespace wavtok::quant {
namespace {

TEST(GreedyBits, OptimalOnBruteForceableConvexCase) {
  const int L = 5;
  const std::vector<int64_t> sizes(L, 1000);
  const std::vector<int> cand{4, 6, 8};
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.2, 5.0);
  std::vector<double> sens(L);
  for (double& s : sens) s = u(rng);
  auto err = [&](size_t l, int b) { return sens[l] * std::pow(2.0, -2.0 * b); };  // convex in b
  for (double avg : {7.6, 6.0, 5.2, 4.4, 4.0}) {
    const double budget = avg * L * 1000;
    int calls = 0;
    const std::vector<int> bits = greedy_bit_allocation(
        sizes, cand,
        [&](size_t l, int b) {
          ++calls;
          return err(l, b);
        },
        budget);
    EXPECT_LE(calls, L * 3);
    double total_bits = 0, total_err = 0;
    for (int l = 0; l < L; ++l) total_bits += 1000.0 * bits[l], total_err += err(l, bits[l]);
    EXPECT_LE(total_bits, budget);
    // Brute force over all 3^5 assignments.
    double best = 1e300;
    for (int code = 0; code < 243; ++code) {
      double b = 0, e = 0;
      for (int l = 0, c = code; l < L; ++l, c /= 3) b += 1000.0 * cand[c % 3], e += err(l, cand[c % 3]);
      if (b <= budget) best = std::min(best, e);
    }
    EXPECT_NEAR(total_err, best, 1e-12 * best) << avg;
  }
}

TEST(GreedyBits, MeetsBudgetWithUnequalSizesAndPrefersInsensitiveLayers) {
  const std::vector<int64_t> sizes{100, 5000, 800, 20000};
  const std::vector<double> sens{10, 1, 50, 0.01};
  const std::vector<int> cand{8, 4, 6};  // order does not matter
  const double budget = 5.0 * (100 + 5000 + 800 + 20000);
  const std::vector<int> bits = greedy_bit_allocation(
      sizes, cand, [&](size_t l, int b) { return sens[l] * std::pow(2.0, -2.0 * b); }, budget);
  double total = 0;
  for (size_t l = 0; l < sizes.size(); ++l) total += double(sizes[l]) * bits[l];
  EXPECT_LE(total, budget);
  EXPECT_EQ(bits[3], 4);  // the big insensitive layer goes down first
  EXPECT_EQ(bits[2], 8);  // the small sensitive one stays at full width
  EXPECT_THROW(greedy_bit_allocation(
                   sizes, cand, [](size_t, int) { return 0.0; }, 3.9 * 25900),
               Error);
}

struct Salient {
  int64_t T = 256, rows = 16, cols = 128, group = 16;
  std::vector<float> x, w;
};

Salient make_salient(uint32_t seed) {
  Salient s;
  s.x = testdata::gaussian(s.T * s.cols, 1.0, seed);
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t j = 40; j < 44; ++j) s.x[t * s.cols + j] *= 12.0f;  // a few salient input channels
  s.w = testdata::gaussian(s.rows * s.cols, 0.1, seed + 1);
  for (int64_t j = 96; j < 112; ++j) s.w[3 * s.cols + j] *= 6.0f;  // and one salient weight group
  return s;
}

double output_mse(const Salient& s, const std::vector<float>& wq) {
  double e = 0;
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t o = 0; o < s.rows; ++o) {
      double d = 0;
      for (int64_t j = 0; j < s.cols; ++j)
        d += double(s.x[t * s.cols + j]) * (double(s.w[o * s.cols + j]) - wq[o * s.cols + j]);
      e += d * d;
    }
  return e / double(s.T * s.rows);
}

TEST(SalienceBits, KeepsAverageAndBeatsUniform) {
  const Salient s = make_salient(12);
  const std::vector<float> xsq = column_mean_square(s.x, s.T, s.cols);
  const std::vector<double> sal = group_salience(s.w, s.rows, s.cols, s.group, xsq);
  // Closed-form check of one group's salience.
  double g0 = 0;
  for (int64_t j = 32; j < 48; ++j) g0 += double(s.w[2 * s.cols + j]) * s.w[2 * s.cols + j] * xsq[j];
  EXPECT_NEAR(sal[2 * 8 + 2], g0, 1e-9 * g0);

  for (int mid : {3, 6}) {
    const int step = mid == 3 ? 1 : 2;
    const GroupBits gb = salience_bit_allocation(s.w, s.rows, s.cols, s.group, xsq, mid, step);
    ASSERT_EQ(gb.bits.size(), sal.size());
    EXPECT_EQ(std::accumulate(gb.bits.begin(), gb.bits.end(), 0L), long(mid) * long(gb.bits.size()));
    EXPECT_GT(gb.pairs, 0);
    // The most salient group gets the high width, the least salient the low one.
    const size_t top = std::max_element(sal.begin(), sal.end()) - sal.begin();
    const size_t bot = std::min_element(sal.begin(), sal.end()) - sal.begin();
    EXPECT_EQ(gb.bits[top], mid + step);
    EXPECT_EQ(gb.bits[bot], mid - step);

    std::vector<float> wq(s.w.size()), wu(s.w.size());
    fake_quant_groups(s.w, s.rows, s.cols, s.group, gb.bits, wq);
    const std::vector<int> uniform_bits(gb.bits.size(), mid);
    fake_quant_groups(s.w, s.rows, s.cols, s.group, uniform_bits, wu);
    // The reported objective is the salience-weighted error of the returned assignment.
    double we = 0;
    for (int64_t i = 0; i < s.rows * s.cols; ++i) we += xsq[i % s.cols] * std::pow(double(s.w[i]) - wq[i], 2);
    EXPECT_NEAR(gb.weighted_error, we, 1e-5 * we);  // wq is float-rounded
    const double e_sba = output_mse(s, wq), e_uni = output_mse(s, wu);
    std::printf("SBA avg %d bits (k=%ld pairs): output MSE %.3g vs uniform %.3g\n", mid, long(gb.pairs), e_sba, e_uni);
    EXPECT_LT(e_sba, 0.8 * e_uni);
  }
  EXPECT_THROW(salience_bit_allocation(s.w, s.rows, s.cols, 24, xsq, 3), Error);
  EXPECT_THROW(salience_bit_allocation(s.w, s.rows, s.cols, s.group, xsq, 2), Error);  // would need 1 bit
}

TEST(Hadamard, MatchesSylvesterMatrixAndIsOrthonormal) {
  const int n = 16;
  std::vector<float> h(n * n, 0.0f);
  for (int i = 0; i < n; ++i) h[i * n + i] = 1.0f;
  hadamard_rows(h, n, n);  // row i = H e_i = column i of H
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double ref = (std::popcount(unsigned(i & j)) % 2 ? -1.0 : 1.0) / std::sqrt(double(n));
      EXPECT_NEAR(h[i * n + j], ref, 1e-7);
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double dot = 0;
      for (int k = 0; k < n; ++k) dot += double(h[i * n + k]) * h[j * n + k];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6);
    }
  std::vector<float> v = testdata::gaussian(64, 1.0, 2), orig = v;
  fwht(v);
  fwht_inverse(v);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], orig[i], 1e-5);
  std::vector<float> bad(12);
  EXPECT_THROW(fwht(bad), Error);
}

TEST(Hadamard, SpreadsOutliersAndPreservesTheProduct) {
  const int n = 256;
  std::vector<float> x = testdata::gaussian(n, 1.0, 5);
  x[17] = 80.0f;
  auto peak_to_rms = [](const std::vector<float>& v) {
    double m = 0, ss = 0;
    for (float a : v) m = std::max(m, double(std::abs(a))), ss += double(a) * a;
    return m / std::sqrt(ss / v.size());
  };
  const double before = peak_to_rms(x);
  std::vector<float> hx = x;
  fwht(hx);
  const double after = peak_to_rms(hx);
  std::printf("Hadamard peak/RMS: %.2f -> %.2f\n", before, after);
  EXPECT_GT(before, 10.0);
  EXPECT_LT(after, 0.4 * before);

  // y = W x = (W H)(H x); and the rotated 4-bit weight error is lower.
  const int rows = 8;
  std::vector<float> w = testdata::gaussian(rows * n, 0.1, 6);
  for (int r = 0; r < rows; ++r) w[r * n + (r * 29) % n] = 3.0f;
  std::vector<float> wh = w;
  hadamard_rows(wh, rows, n);
  for (int r = 0; r < rows; ++r) {
    double y = 0, yh = 0;
    for (int j = 0; j < n; ++j) y += double(w[r * n + j]) * x[j], yh += double(wh[r * n + j]) * hx[j];
    EXPECT_NEAR(yh, y, 1e-4 * (1 + std::abs(y)));
  }
  const std::vector<int64_t> shape{rows, n};
  const UniformSpec spec{.bits = 4, .symmetric = true, .gran = Granularity::kPerChannel, .axis = 0};
  EXPECT_LT(quant_mse(wh, calibrate(wh, shape, spec)), 0.5 * quant_mse(w, calibrate(w, shape, spec)));
}

}  // namespace
}  // namespace wavtok::quant
