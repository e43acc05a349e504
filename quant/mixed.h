// Mixed-precision bit allocation and outlier-suppressing rotation.
//
// (a) Greedy per-layer bit allocation (MPTQ-ViT, Tai et al. 2024, "Mixed-Precision Post-Training
//     Quantization for Vision Transformer", greedy mixed-precision search): every layer starts at the
//     largest candidate width; while the total size sum_l size_l * bits_l exceeds the budget, the
//     layer whose step down to its next lower candidate costs the least error per saved bit,
//       (err_l(b_lower) - err_l(b_now)) / (size_l * (b_now - b_lower)),
//     is lowered. err(layer, bits) is a caller-supplied sensitivity (e.g. output MSE or loss increase
//     of the model with only that layer quantized), evaluated at most once per (layer, width).
//     For separable convex errors with equal sizes and equal width steps this marginal analysis is
//     optimal; in general it is a heuristic.
//
// (b) Salience-driven per-group weight bit allocation (SliM-LLM, Huang et al. 2024, "SliM-LLM:
//     Salience-Driven Mixed-Precision Quantization for Large Language Models", SBA):
//     groups are `group` consecutive weights of a row of W[rows, cols] (cols = the reduction axis,
//     as in Granularity::kPerGroup). Salience of a group g in row o:
//       S_g = sum_{j in g} w_oj^2 * E[x_j^2]       (diagonal-Hessian proxy from calibration data)
//     Groups are ranked by S; the k most salient get `high` bits, the k least salient get `low`,
//     the rest `mid`, with high - mid == mid - low so the average stays exactly `mid`. k is chosen
//     (0 .. n/2) to minimise the salience-weighted quantization error
//       sum_g sum_{j in g} E[x_j^2] (w_oj - Q_{b_g}(w_oj))^2
//     with Q_b the per-group asymmetric min-max quantizer at b bits. O(n log n + n * group).
//
// (c) Hadamard rotation (QuaRot / QuIP#-style incoherence processing): the normalised
//     Walsh-Hadamard transform H (n a power of two, H = H^T = H^-1) spreads an outlier over all
//     coordinates. For y = W x: y = (W H)(H x), so rotate the weight rows and the activation rows
//     with the same H before quantizing. fwht is O(n log n), in place.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace wavtok::quant {

// Returns bits per layer, each from `candidates`. budget_bits bounds sum(sizes[l] * bits[l]).
// Throws if even the smallest widths exceed the budget.
std::vector<int> greedy_bit_allocation(std::span<const int64_t> sizes, std::span<const int> candidates,
                                       const std::function<double(size_t layer, int bits)>& error, double budget_bits);

// S_g for each group of W[rows, cols] (row-major; groups never straddle rows). x_sq_mean[cols] = E[x_j^2].
std::vector<double> group_salience(std::span<const float> w, int64_t rows, int64_t cols, int64_t group,
                                   std::span<const float> x_sq_mean);

struct GroupBits {
  std::vector<int> bits;  // per group, row-major group order
  int64_t pairs = 0;      // k: groups promoted (and demoted)
  double weighted_error = 0;
};

// SliM-LLM SBA over widths {mid - step, mid, mid + step}.
GroupBits salience_bit_allocation(std::span<const float> w, int64_t rows, int64_t cols, int64_t group,
                                  std::span<const float> x_sq_mean, int mid, int step = 1);

// Per-group asymmetric min-max fake quantization with a width per group.
void fake_quant_groups(std::span<const float> w, int64_t rows, int64_t cols, int64_t group, std::span<const int> bits,
                       std::span<float> out);

// E[x_j^2] per column of calibration activations x[T, cols].
std::vector<float> column_mean_square(std::span<const float> x, int64_t T, int64_t cols);

// In-place normalised fast Walsh-Hadamard transform; x.size() must be a power of two.
void fwht(std::span<float> x);
// Its inverse (the normalised transform is an involution); provided for readability at call sites.
void fwht_inverse(std::span<float> x);
// Applies fwht to each row of a row-major [rows, n] matrix (weights W -> W H, activations x -> H x).
void hadamard_rows(std::span<float> m, int64_t rows, int64_t n);

}  // namespace wavtok::quant
