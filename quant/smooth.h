// SmoothQuant with bias (SQ-b) and its alpha search (OPT-m), after MPTQ-ViT (Tai et al., 2024,
// "MPTQ-ViT: Mixed-Precision Post-Training Quantization for Vision Transformer"), building on
// SmoothQuant (Xiao et al., ICML 2023).
//
// For a linear layer Y = X W^T + b, X[T, Cin], W[Cout, Cin]:
//   shift  d_j = (max_t X_tj + min_t X_tj) / 2        (channel mid-range; 0 when use_bias = false)
//   scale  s_j = max|X_j - d_j|^alpha / max_o|W_oj|^(1 - alpha)
//   X~ = (X - d) / s                 (symmetric per channel, outlier channels shrunk)
//   W'[:, j] = W[:, j] * s_j,  b' = b + W d
// so that X~ W'^T + b' = X W^T + b exactly in real arithmetic. The shift makes asymmetric channels
// (e.g. post-GELU, post-LayerNorm with large beta) symmetric, so a symmetric activation quantizer
// wastes no range; the scale migrates activation outliers into the weights.
// X~ is produced by folding (d, s) into the previous op (fold_into_layernorm) or at runtime.
//
// OPT-m: alpha is chosen from a grid (default 0, 0.05, ..., 1) to minimise the float64 MSE of the
// fake-quantized layer output  || (Q_a(X~) Q_w(W')^T + b') - (X W^T + b) ||^2  on calibration data,
// with Q_w symmetric per-output-channel min-max and Q_a per-tensor min-max (symmetric by default).
// Cost: one T x Cin x Cout GEMM per grid point.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wavtok::quant {

struct SmoothResult {
  double alpha = 0.5;
  std::vector<float> shift;   // d [Cin]
  std::vector<float> scale;   // s [Cin]
  std::vector<float> weight;  // W' [Cout, Cin]
  std::vector<float> bias;    // b' [Cout]
};

struct LayerQuantSpec {
  int w_bits = 8;
  int a_bits = 8;
  bool a_symmetric = true;
};

// Computes SQ-b for one alpha from calibration activations x[T, cin] and the layer (w [cout, cin], b [cout]).
SmoothResult smooth_quant_bias(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                               std::span<const float> b, int64_t cout, double alpha, bool use_bias = true);

// OPT-m: the SQ-b result whose fake-quantized output error is lowest over `alphas` (empty = default grid).
SmoothResult search_smooth_alpha(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                                 std::span<const float> b, int64_t cout, const LayerQuantSpec& q, bool use_bias = true,
                                 std::span<const double> alphas = {});

// x~ = (x - d) / s, row-major [T, cin].
void apply_smooth(std::span<const float> x, int64_t T, int64_t cin, const SmoothResult& r, std::span<float> out);

// Folds the activation transform into the preceding LayerNorm: gamma' = gamma / s, beta' = (beta - d) / s.
void fold_into_layernorm(std::span<float> gamma, std::span<float> beta, const SmoothResult& r);

// float64 MSE of the fake-quantized layer (activation x_in fed to weight/bias) against the float
// reference y_ref [T, cout]. With smoothing, pass x~ and W', b'.
double quantized_layer_mse(std::span<const float> x_in, int64_t T, int64_t cin, std::span<const float> w,
                           std::span<const float> b, int64_t cout, std::span<const double> y_ref,
                           const LayerQuantSpec& q);

// float64 reference y = x w^T + b.
std::vector<double> linear_f64(std::span<const float> x, int64_t T, int64_t cin, std::span<const float> w,
                               std::span<const float> b, int64_t cout);

}  // namespace wavtok::quant
