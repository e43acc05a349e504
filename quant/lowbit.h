// Group-wise low-bit weights on an s8 grid (W4 recipes, docs/PTQ.md "Low-bit weights").
//
// A weight matrix W[rows, cols] (rows = output channels, cols = the reduction row: Cin for a linear layer,
// Cin*K for a conv, flattened input-channel-major) is cut into groups of `group` consecutive columns of a row
// (the last group of a row may be shorter). Each group g of row o gets a width b_g (2..8 bits, chosen per group,
// see below) and an integer multiplier m_g; the row has one float scale S_o:
//
//   w_hat = S_o * m_g * q,   q in [-qmax(b_g), qmax(b_g)],  qmax(b) = 2^(b-1) - 1,   1 <= m_g <= 127 / qmax(b_g)
//
// so every weight is an s8 code c = m_g * q (|c| <= 127) times the per-row scale: the layer runs on the
// existing int8 kernels (u8 x s8, one scale per output channel) and its integer emulation is exact; the group
// scales are S_o * m_g (a two-level scale: per-row float, per-group integer). S_o = max|W_o| / 127.
//
// Bit allocation (SliM-LLM, Huang et al. 2024, "Salience-Driven Mixed-Precision Quantization for LLMs"): the
// salience of weight w_oj is w_oj^2 E[x_j^2] (the diagonal-Hessian proxy of the output error, E[x^2] from
// calibration activations). The paper's SBA ranks groups by salience and moves the most salient up one width and
// the least salient down one, keeping the average; here the same objective, the salience-weighted error
//   err_g(b) = sum_{j in g} E[x_j^2] (w_oj - w_hat_oj)^2,
// is minimised over the widths {2, 3, 4, 8} (any set in 2..8) under the average-bits budget of the layer,
// exactly on the convex hull (Lagrangian: each group takes argmin_b err_g(b) + lambda * len_g * b, lambda
// bisected to meet the budget, the leftover budget spent greedily on the best error-per-bit upgrades).
// SQC (the paper's salience-weighted quantizer calibration) as I read it: per group and width, the group scale
// (here the multiplier m_g) is searched to minimise the same salience-weighted error instead of taking the
// min-max scale, which clips the non-salient extremes in favour of the salient weights.
//
// Packed storage: io/lowbit_pack.h.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace wavtok::quant {

inline int lowbit_qmax(int bits) { return (1 << (bits - 1)) - 1; }

struct LowBitSpec {
  int64_t group = 64;                      // columns per group
  double avg_bits = 4.0;                   // budget: average code bits per weight over the layer
  std::vector<int> widths = {2, 3, 4, 8};  // allowed widths (2..8); one width = uniform group quantization
  bool sqc = true;                         // search each group's multiplier (false: min-max multiplier)
};

struct LowBitWeights {
  int64_t rows = 0, cols = 0, group = 0;
  std::vector<float> row_scale;  // S_o [rows]
  std::vector<uint8_t> bits;     // [rows * groups_per_row()]
  std::vector<uint8_t> mult;     // [rows * groups_per_row()]
  std::vector<int8_t> codes;     // m_g * q [rows * cols]
  double weighted_error = 0;     // sum of err_g at the chosen widths
  int64_t groups_per_row() const { return group > 0 ? (cols + group - 1) / group : 0; }
  double avg_bits() const;  // code bits per weight
  // w_hat = float(code) * S_o (the expression the model reader uses, so both give the same floats)
  std::vector<float> dequantize() const;
};

// Quantizes W[rows, cols] with salience E[x_j^2] = x_sq_mean[cols]. Throws on bad sizes, widths or budget.
LowBitWeights quantize_lowbit(std::span<const float> w, int64_t rows, int64_t cols, std::span<const float> x_sq_mean,
                              const LowBitSpec& spec);

// Block-diagonal normalised Walsh-Hadamard rotation R (blocks of `block` = a power of two dividing n; R = R^T =
// R^-1), computed in float64. hadamard_block(n) is the largest power of two dividing n, at most `cap`.
int64_t hadamard_block(int64_t n, int64_t cap = 1024);
// W[rows, n] -> W R (mixes the columns of every row: the weight of the layer whose input is rotated).
void rotate_columns(std::span<float> w, int64_t rows, int64_t n, int64_t block);
// W[n, cols] -> R W (mixes the rows: the weight/bias of the layer whose output is rotated; a bias is cols = 1).
void rotate_rows(std::span<float> w, int64_t n, int64_t cols, int64_t block);

}  // namespace wavtok::quant
