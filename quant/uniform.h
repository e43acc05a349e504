// Uniform (affine) post-training quantizers: the integer grid every int8/int4 layer uses.
//
// Quantize:    q = clamp(round_half_even(x / s) + z, qmin, qmax)
// Dequantize:  x_hat = s * (q - z)
//
//  * symmetric:  z = 0, qmax = 2^(b-1) - 1, qmin = -qmax (narrow range, so -x quantizes to -q;
//                s8 weights with qmin = -127 keep the oneDNN s8 x s8 products symmetric).
//  * asymmetric: qmin = 0, qmax = 2^b - 1, s = (hi - lo) / qmax, z = -round(lo / s).
//                With include_zero (default) the range is widened to contain 0 so that 0 (padding,
//                ReLU zeros) is exact and z fits the unsigned storage type.
//
// Granularity (row-major tensor of `shape`):
//  * per-tensor:  one (s, z).
//  * per-channel: one (s, z) per index along `axis` (e.g. axis 0 of a weight [Cout, Cin, K],
//                 axis 1 of an activation [T, C]).
//  * per-group:   one (s, z) per run of `group` consecutive elements along the reduction axis:
//                 the trailing dims from `axis` on are one reduction row of length L, L % group == 0,
//                 so the groups are simply consecutive `group`-element runs of the flat tensor.
//
// Range estimation, per parameter slot:
//  * kMinMax:     [min, max] (symmetric: max |x|).
//  * kPercentile: [P_(100-p), P_p] of the values, both tails clipped (symmetric: P_p of |x|).
//                 Order statistic at index round((n-1) p / 100), found with nth_element (O(n)).
//  * kMse:        grid search of a clipping ratio r in {k / mse_grid, k = round(mse_min_ratio *
//                 mse_grid) .. mse_grid}, range [r lo, r hi], minimising the float64 MSE of
//                 quantize-dequantize (the PTQ4ViT / EasyQuant style search). Cost mse_grid passes.
//  * kOmse:       "optimal MSE" clipping (Choukroun et al., ICCVW 2019, "Low-bit quantization of
//                 neural networks for efficient inference"): per slot, start from the kMse optimum,
//                 refine the ratio by golden-section search inside the neighbouring grid cells and,
//                 for asymmetric grids, clip the lower and upper ends independently (coordinate
//                 descent over two ratios). Only improvements are accepted, so it is never worse
//                 than kMse. Intended for per-channel weight quantization at 4 bits and below.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wavtok::quant {

enum class Granularity { kPerTensor, kPerChannel, kPerGroup };
enum class RangeMethod { kMinMax, kPercentile, kMse, kOmse };

struct UniformSpec {
  int bits = 8;  // 2..16
  bool symmetric = false;
  Granularity gran = Granularity::kPerTensor;
  int axis = 0;   // channel axis (per-channel) or first reduction axis (per-group)
  int group = 0;  // group size (per-group)
  RangeMethod range = RangeMethod::kMinMax;
  double percentile = 99.99;  // kPercentile: upper percentile p in (50, 100]
  int mse_grid = 100;         // kMse / kOmse: number of ratio steps over (0, 1]
  double mse_min_ratio = 0.01;
  bool include_zero = true;  // asymmetric only: widen [lo, hi] to contain 0
};

struct QParams {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int bits = 8;
  bool symmetric = false;
  Granularity gran = Granularity::kPerTensor;
  int axis = 0;
  int group = 0;
  std::vector<int64_t> shape;  // the tensor shape the slots refer to

  int32_t qmin() const;
  int32_t qmax() const;
};

int32_t qmin_for(int bits, bool symmetric);
int32_t qmax_for(int bits, bool symmetric);

// How flat element indices map to parameter slots; the tensor is walked as runs of `run`
// consecutive elements that share a slot. Slot of run r: (r % channels) for per-channel,
// r for per-group, 0 for per-tensor.
struct SlotLayout {
  int64_t numel = 0;
  int64_t run = 0;    // elements per run
  int64_t slots = 1;  // number of parameter slots
  Granularity gran = Granularity::kPerTensor;
  int64_t slot_of_run(int64_t r) const {
    return gran == Granularity::kPerChannel ? r % slots : (gran == Granularity::kPerGroup ? r : 0);
  }
  int64_t slot_of(int64_t i) const { return slot_of_run(i / run); }
};

// Validates shape/axis/group and returns the layout. Throws wavtok::Error on bad input.
SlotLayout slot_layout(std::span<const int64_t> shape, Granularity gran, int axis, int group);

// (s, z) for one slot from a range [lo, hi] (symmetric: uses max(|lo|, |hi|)).
void params_for_range(double lo, double hi, int bits, bool symmetric, bool include_zero, float& scale,
                      int32_t& zero_point);

// Calibrates quantization parameters of x (row-major `shape`) under `spec`.
QParams calibrate(std::span<const float> x, std::span<const int64_t> shape, const UniformSpec& spec);

// Builds params from explicit per-slot ranges (lo.size() == hi.size() == slot count).
QParams params_from_ranges(std::span<const float> lo, std::span<const float> hi, std::span<const int64_t> shape,
                           const UniformSpec& spec);

// Quantize-dequantize (in and out may alias).
void fake_quant(std::span<const float> in, std::span<float> out, const QParams& p);

// Integer codes. quantize_s8 requires qmin >= -128, qmax <= 127; quantize_u8 requires 0..255.
void quantize(std::span<const float> in, std::span<int32_t> out, const QParams& p);
void quantize_s8(std::span<const float> in, std::span<int8_t> out, const QParams& p);
void quantize_u8(std::span<const float> in, std::span<uint8_t> out, const QParams& p);
void dequantize(std::span<const int32_t> in, std::span<float> out, const QParams& p);
void dequantize(std::span<const int8_t> in, std::span<float> out, const QParams& p);
void dequantize(std::span<const uint8_t> in, std::span<float> out, const QParams& p);

// float64 mean squared error of fake_quant(x) against x.
double quant_mse(std::span<const float> x, const QParams& p);

}  // namespace wavtok::quant
