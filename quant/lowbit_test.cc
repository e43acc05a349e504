// Group-wise low-bit weights (SliM-LLM bit allocation, SQC) and the block Hadamard rotation, against
// independent float64 computations.
#include "quant/lowbit.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"

namespace wavtok::quant {
namespace {

// Weights with a few heavy rows/columns and activations whose power varies by 1000x across columns: the
// setting salience-driven allocation is for.
struct Layer {
  int64_t rows, cols;
  std::vector<float> w, xsq;
};

Layer make_layer(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Layer l{rows, cols, std::vector<float>(size_t(rows * cols)), std::vector<float>(size_t(cols))};
  for (int64_t j = 0; j < cols; ++j) l.xsq[j] = std::pow(10.0f, 3.0f * u(rng)) * 1e-3f;  // 1e-3 .. 1
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t j = 0; j < cols; ++j) l.w[o * cols + j] = nd(rng) * (u(rng) < 0.01f ? 6.0f : 1.0f);
  return l;
}

// sum_j E[x_j^2] (w - w_hat)^2 in float64, from the dequantized weights alone.
double weighted_error(const Layer& l, const std::vector<float>& wq) {
  double e = 0;
  for (int64_t o = 0; o < l.rows; ++o)
    for (int64_t j = 0; j < l.cols; ++j) {
      const double d = double(l.w[o * l.cols + j]) - wq[o * l.cols + j];
      e += double(l.xsq[j]) * d * d;
    }
  return e;
}

TEST(LowBit, CodesLieOnTheirGroupGrids) {
  const Layer l = make_layer(24, 200, 1);  // 200 = 3 groups of 64 + a short one of 8
  LowBitSpec spec;
  spec.group = 64;
  spec.avg_bits = 4.0;
  const LowBitWeights q = quantize_lowbit(l.w, l.rows, l.cols, l.xsq, spec);
  ASSERT_EQ(q.groups_per_row(), 4);
  ASSERT_EQ(q.bits.size(), size_t(24 * 4));
  const std::vector<float> wq = q.dequantize();
  for (int64_t o = 0; o < l.rows; ++o) {
    float amax = 0;
    for (int64_t j = 0; j < l.cols; ++j) amax = std::max(amax, std::fabs(l.w[o * l.cols + j]));
    EXPECT_FLOAT_EQ(q.row_scale[o], amax / 127.0f);
    for (int64_t j = 0; j < l.cols; ++j) {
      const int64_t g = o * 4 + j / 64;
      const int b = q.bits[g], m = q.mult[g], qmax = (1 << (b - 1)) - 1;
      const int c = q.codes[o * l.cols + j];
      ASSERT_TRUE(b == 2 || b == 3 || b == 4 || b == 8) << b;
      ASSERT_GE(m, 1);
      ASSERT_LE(m * qmax, 127);
      ASSERT_EQ(c % m, 0);
      ASSERT_LE(std::abs(c / m), qmax);
      // the dequantized value is the code times the row scale, and the code the nearest on the group's grid
      ASSERT_EQ(wq[o * l.cols + j], float(c) * q.row_scale[o]);
      const float x = l.w[o * l.cols + j] / (q.row_scale[o] * float(m));
      ASSERT_EQ(c / m, int(std::clamp(std::nearbyint(x), -float(qmax), float(qmax))));
    }
  }
  EXPECT_LE(q.avg_bits(), 4.0 + 1e-9);
  EXPECT_GE(q.avg_bits(), 3.9);                                                   // the budget is spent
  EXPECT_NEAR(q.weighted_error, weighted_error(l, wq), 1e-4 * q.weighted_error);  // float vs double products
}

TEST(LowBit, SalienceAllocationBeatsUniformAtTheSameBits) {
  const Layer l = make_layer(64, 256, 2);
  LowBitSpec uni;
  uni.group = 64;
  uni.avg_bits = 4;
  uni.widths = {4};
  LowBitSpec slim = uni;
  slim.widths = {2, 3, 4, 8};
  LowBitSpec minmax = uni;
  minmax.sqc = false;
  const LowBitWeights a = quantize_lowbit(l.w, l.rows, l.cols, l.xsq, uni);
  const LowBitWeights b = quantize_lowbit(l.w, l.rows, l.cols, l.xsq, slim);
  const LowBitWeights c = quantize_lowbit(l.w, l.rows, l.cols, l.xsq, minmax);
  EXPECT_DOUBLE_EQ(a.avg_bits(), 4.0);
  EXPECT_LE(b.avg_bits(), 4.0 + 1e-9);
  const double ea = weighted_error(l, a.dequantize()), eb = weighted_error(l, b.dequantize()),
               ec = weighted_error(l, c.dequantize());
  std::printf("salience-weighted error at 4 bits: min-max %.4g, SQC %.4g, SliM {2,3,4,8} + SQC %.4g\n", ec, ea, eb);
  EXPECT_LE(ea, ec);        // SQC never loses to min-max (it is among the candidates)
  EXPECT_LT(eb, 0.8 * ea);  // mixed widths by salience: clearly better at the same average
  int used[9] = {};
  for (uint8_t x : b.bits) ++used[x];
  EXPECT_GT(used[2] + used[3], 0);
  EXPECT_GT(used[8], 0);
  // More bits, less error.
  slim.avg_bits = 6;
  EXPECT_LT(weighted_error(l, quantize_lowbit(l.w, l.rows, l.cols, l.xsq, slim).dequantize()), eb);
}

// The price of the s8 grid: group scales restricted to integer multiples of the row scale (so the layer runs on
// the int8 kernels with one scale per output channel) against free float group scales (symmetric, clipping ratio
// searched on 0.50..1.00 in steps of 0.01 on the same salience-weighted error), 4-bit groups of 64.
TEST(LowBit, IntegerMultipliersAgainstFloatGroupScales) {
  const Layer l = make_layer(64, 256, 5);
  LowBitSpec spec;
  spec.group = 64;
  spec.avg_bits = 4;
  spec.widths = {4};
  const double ours = weighted_error(l, quantize_lowbit(l.w, l.rows, l.cols, l.xsq, spec).dequantize());
  double free_scales = 0;
  for (int64_t o = 0; o < l.rows; ++o)
    for (int64_t g0 = 0; g0 < l.cols; g0 += 64) {
      double amax = 0;
      for (int64_t j = g0; j < g0 + 64; ++j) amax = std::max(amax, double(std::fabs(l.w[o * l.cols + j])));
      double best = 1e300;
      for (int r = 50; r <= 100; ++r) {
        const double s = amax * r / 100.0 / 7.0;
        double e = 0;
        for (int64_t j = g0; j < g0 + 64; ++j) {
          const double x = l.w[o * l.cols + j], q = std::clamp(std::nearbyint(x / s), -7.0, 7.0);
          e += double(l.xsq[j]) * (x - s * q) * (x - s * q);
        }
        best = std::min(best, e);
      }
      free_scales += best;
    }
  std::printf("4-bit groups of 64, salience-weighted error: integer multipliers %.4g, free float scales %.4g (x%.3f)\n",
              ours, free_scales, ours / free_scales);
  EXPECT_LT(ours, 1.25 * free_scales);
}

TEST(LowBit, ZeroRowsAndBadArguments) {
  std::vector<float> w(2 * 8, 0.0f), xsq(8, 1.0f);
  w[8] = 1.0f;
  LowBitSpec s;
  s.group = 4;
  const LowBitWeights q = quantize_lowbit(w, 2, 8, xsq, s);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(q.codes[j], 0);
  EXPECT_EQ(q.dequantize()[8], 1.0f);
  EXPECT_THROW(quantize_lowbit(w, 2, 7, xsq, s), Error);
  s.avg_bits = 1.5;
  EXPECT_THROW(quantize_lowbit(w, 2, 8, xsq, s), Error);
  s.avg_bits = 4;
  s.widths = {1, 4};
  EXPECT_THROW(quantize_lowbit(w, 2, 8, xsq, s), Error);
  s.widths = {4};
  w[3] = std::nanf("");
  EXPECT_THROW(quantize_lowbit(w, 2, 8, xsq, s), Error);
}

TEST(LowBit, BlockHadamardFoldIsExact) {
  EXPECT_EQ(hadamard_block(192), 64);
  EXPECT_EQ(hadamard_block(128), 128);
  EXPECT_EQ(hadamard_block(576), 64);
  EXPECT_EQ(hadamard_block(7), 1);
  // y = Wo (Wv x + bv) = (Wo R)((R Wv) x + R bv) for R block Hadamard
  const int64_t D = 192, I = 40;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> wo(D * D), wv(D * I), bv(D), x(I);
  for (auto* v : {&wo, &wv, &bv, &x})
    for (auto& e : *v) e = nd(rng);
  std::vector<float> wo2 = wo, wv2 = wv, bv2 = bv;
  const int64_t blk = hadamard_block(D);
  rotate_columns(wo2, D, D, blk);
  rotate_rows(wv2, D, I, blk);
  rotate_rows(bv2, D, 1, blk);
  auto run = [&](const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& bb) {
    std::vector<double> h(D), y(D);
    for (int64_t d = 0; d < D; ++d) {
      h[d] = bb[d];
      for (int64_t i = 0; i < I; ++i) h[d] += double(b[d * I + i]) * x[i];
    }
    for (int64_t o = 0; o < D; ++o)
      for (int64_t d = 0; d < D; ++d) y[o] += double(a[o * D + d]) * h[d];
    return y;
  };
  const std::vector<double> y0 = run(wo, wv, bv), y1 = run(wo2, wv2, bv2);
  double num = 0, den = 0;
  for (int64_t o = 0; o < D; ++o) num += (y0[o] - y1[o]) * (y0[o] - y1[o]), den += y0[o] * y0[o];
  EXPECT_LT(std::sqrt(num / den), 1e-6);  // float32 rounding of the rotated weights only
  // the rotation really mixes: a one-hot row becomes flat over its block
  std::vector<float> e(D, 0.0f);
  e[5] = 1.0f;
  rotate_columns(e, 1, D, blk);
  for (int64_t j = 0; j < 64; ++j) EXPECT_NEAR(std::fabs(e[j]), 0.125f, 1e-7);
  for (int64_t j = 64; j < D; ++j) EXPECT_EQ(e[j], 0.0f);
  EXPECT_THROW(rotate_columns(e, 1, D, 128), Error);  // 128 does not divide 192
}

}  // namespace
}  // namespace wavtok::quant
