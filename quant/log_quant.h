// Non-uniform quantizers for power-law activations (post-Softmax attention maps, post-GELU).
//
// All three produce b-bit codes q in [0, 2^b - 1] and dequantize through a 2^b-entry table
// `levels` (what an int8 kernel would hold as a LUT / shift+multiplier pair). Per-tensor scale s.
// L = 2^b. Inputs are expected in [0, s] (post-Softmax); values <= 0 go to the smallest level.
//
// 1. log-sqrt(2)  (RepQ-ViT, Li et al., ICCV 2023, "RepQ-ViT: Scale Reparameterization for
//    Post-Training Quantization of Vision Transformers"):
//      q = round(-2 log2(x / s))                       (base sqrt(2))
//      zero_code: q >= L-1 -> code L-1, which dequantizes to 0 (values below the smallest level
//                 underflow to zero, as in the reference implementation's mask); codes 0..L-2 are
//                 levels.  Without zero_code: q = clamp(q, 0, L-1), all L codes are levels.
//      x_hat = s * 2^(-ceil(q/2)) * (q odd ? sqrt(2) : 1)   ( == s * 2^(-q/2) ), the
//                 hardware form: a shift by ceil(q/2) plus one sqrt(2) multiply on odd codes.
//    Calibration: s = beta * max(x), beta grid-searched in [0.5, 1] for minimum MSE.
//
// 2. AdaLog (Wu et al., ECCV 2024, "AdaLog: Post-Training Quantization for Vision Transformers with
//    Adaptive Logarithm Quantizer"): the log base is a searched parameter, base = 2^(k/r) with
//    integer k and fixed denominator r (default 32, so k = 16 is log-sqrt(2), k = 32 is log2):
//      q = round(-log2(x / s) * r / k), zero_code / clamping as above,
//      x_hat = s * 2^(-floor(q k / r)) * M[q],  M[q] = round(2^(-frac(q k / r)) * 2^m) / 2^m
//    i.e. an integer shift plus an m-bit mantissa LUT (m = mant_bits, default 8) — the paper's
//    hardware-friendly de-quantization. Calibration follows the paper's Fast Progressive Combining
//    Search in spirit: (i) scan k = 1..2r at s = max, (ii) search s = beta * max for the 4 best k,
//    (iii) refine k +- 1 with a fine beta grid; objective MSE.
//    Post-GELU (the paper's bias reparameterization): with shift_negative, a shift c = -min(x) >= 0
//    is added before quantizing (x + c >= 0) and subtracted after; an integer pipeline instead
//    feeds Q(x + c) to the next linear layer and folds -W c into its bias (fold_shift_into_bias).
//
// 3. TanQ (Yang et al., 2024, "DopQ-ViT: Towards Distribution-Friendly and Outlier-Aware
//    Post-Training Quantization for Vision Transformers"): a tangent companding quantizer whose
//    levels are dense near BOTH 0 (the mass of a power-law map) and s (the few large, important
//    attention weights), which a log quantizer resolves poorly. Implemented form:
//      t(x) = tan(a (x / s - m)),  t0 = t(0), t1 = t(s),  D = (t1 - t0) / (L - 1)
//      q = clamp(round((t(x) - t0) / D), 0, L-1)
//      x_hat = s * (m + atan(t0 + q D) / a)          (x_hat(0) = 0 and x_hat(L-1) = s exactly)
//    with inflection m in (0, 1) and steepness a, a * max(m, 1-m) < pi/2; a -> 0 degenerates to the
//    uniform quantizer. Encoding is equivalent to comparing x against L-1 fixed thresholds.
//    (m, a) are grid-searched (coarse, then fine around the best) for minimum MSE; s = max(x).
//    This is my reading of the paper's TanQ; the paper's exact parameterization may differ.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wavtok::quant {

enum class LogKind { kLogSqrt2, kAdaLog, kTan };

struct LogQuantSpec {
  int bits = 4;                   // 2..8
  bool zero_code = true;          // log kinds: reserve the top code for exact zero
  bool search = true;             // search the scale/base/shape; false = s = max with defaults
  int64_t max_samples = 1 << 17;  // calibration subsamples (strided) beyond this size
  int adalog_r = 32;              // AdaLog base denominator r
  int mant_bits = 8;              // AdaLog dequantization mantissa bits
  bool shift_negative = false;    // AdaLog post-GELU: shift by -min(x)
};

struct LogQParams {
  LogKind kind = LogKind::kLogSqrt2;
  int bits = 4;
  float scale = 1;
  bool zero_code = true;
  int k = 16, r = 32;            // log exponent step k / r (log-sqrt(2): 16 / 32)
  double tan_a = 0, tan_m = 0;   // TanQ shape
  double tan_t0 = 0, tan_d = 0;  // TanQ: t(0) and the step in the tan domain
  float shift = 0;               // added before quantizing, subtracted after dequantizing
  std::vector<float> levels;     // dequantized value of each code, excluding the shift

  uint8_t code(float x) const;
};

LogQParams make_log_sqrt2(float scale, int bits, bool zero_code = true);
LogQParams make_adalog(float scale, int k, int r, int bits, bool zero_code = true, int mant_bits = 8, float shift = 0);
LogQParams make_tanq(float scale, double a, double m, int bits);

LogQParams calibrate_log_sqrt2(std::span<const float> x, const LogQuantSpec& spec = {});
LogQParams calibrate_adalog(std::span<const float> x, const LogQuantSpec& spec = {});
LogQParams calibrate_tanq(std::span<const float> x, const LogQuantSpec& spec = {});

void quantize(std::span<const float> in, std::span<uint8_t> codes, const LogQParams& p);
// Dequantizes codes; the shift is subtracted (x_hat = levels[q] - shift).
void dequantize(std::span<const uint8_t> codes, std::span<float> out, const LogQParams& p);
void fake_quant(std::span<const float> in, std::span<float> out, const LogQParams& p);
double quant_mse(std::span<const float> x, const LogQParams& p);

// For a linear layer y = W u + b fed with u = Q(x + c) instead of Q(x) + ... : b -= c * rowsum(W).
// W is row-major [cout, cin]; bias has cout entries.
void fold_shift_into_bias(std::span<const float> w, int64_t cout, int64_t cin, float shift, std::span<float> bias);

}  // namespace wavtok::quant
