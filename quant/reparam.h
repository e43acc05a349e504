// Scale reparameterization of post-LayerNorm activations (RepQ-ViT, Li et al., ICCV 2023,
// "RepQ-ViT: Scale Reparameterization for Post-Training Quantization of Vision Transformers").
//
// Post-LayerNorm activations X[T, C] have severe inter-channel variation, so they want per-channel
// (s_c, z_c), which integer GEMMs cannot consume. RepQ-ViT calibrates per-channel asymmetric
// params, then picks one layer-wise (s~, z~) and moves the per-channel difference into the
// LayerNorm affine and the next linear layer, so the per-tensor quantizer reproduces the
// per-channel one exactly:
//
//   r1 = s / s~,  r2 = z - z~                      (r2 is an integer vector)
//   gamma' = gamma / r1,   beta' = (beta + s * r2) / r1
//   W'[:, c] = W[:, c] * r1[c],   b' = b - W (s * r2)
//
// Proof sketch: X' = (X + s r2) / r1 gives round(X'/s~) + z~ = round(X/s) + z (same codes, same
// clamp), and s~ (q - z~) * r1 - s r2 = s (q - z), so W' Xhat' + b' = W Xhat + b.
//
// Shared scale choice:
//  * kMean   (RepQ-ViT): s~ = mean(s_c), z~ = round(mean(z_c)).
//  * kMedian (DopQ-ViT's MOSF idea, Yang et al. 2024): the mean is dragged up by a few outlier
//            channels, which then leave the ordinary channels with r1 << 1 (coarse effective
//            steps); the median is robust to them: s~ = median(s_c), z~ = round(median(z_c)).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/uniform.h"

namespace wavtok::quant {

enum class SharedScale { kMean, kMedian };

struct LnReparam {
  std::vector<float> gamma, beta;   // new LayerNorm affine [C]
  std::vector<float> weight, bias;  // new linear layer: row-major [Cout, C], [Cout]
  QParams act;                      // per-tensor params (s~, z~) for the new LayerNorm output
  std::vector<double> r1;           // s_c / s~
  std::vector<int32_t> r2;          // z_c - z~
};

// per_channel: params calibrated on X[..., C] with gran = kPerChannel along the last axis.
// weight: row-major [cout, C]. Throws wavtok::Error on inconsistent shapes.
LnReparam reparam_layernorm(const QParams& per_channel, std::span<const float> gamma, std::span<const float> beta,
                            std::span<const float> weight, std::span<const float> bias, int64_t cout,
                            SharedScale shared = SharedScale::kMean);

}  // namespace wavtok::quant
