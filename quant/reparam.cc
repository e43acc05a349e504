#include "quant/reparam.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace wavtok::quant {
namespace {

double median_of(std::vector<double> v) {
  const size_t n = v.size(), h = n / 2;
  std::nth_element(v.begin(), v.begin() + h, v.end());
  if (n % 2) return v[h];
  const double hi = v[h];
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + h));
}

}  // namespace

LnReparam reparam_layernorm(const QParams& pc, std::span<const float> gamma, std::span<const float> beta,
                            std::span<const float> weight, std::span<const float> bias, int64_t cout,
                            SharedScale shared) {
  if (pc.gran != Granularity::kPerChannel || pc.shape.empty() || pc.axis != int(pc.shape.size()) - 1)
    throw Error("quant: LayerNorm reparameterization needs per-channel params along the last (channel) axis");
  const int64_t C = pc.shape.back();
  if (int64_t(pc.scale.size()) != C || int64_t(pc.zero_point.size()) != C)
    throw Error("quant: per-channel params do not match the channel count");
  if (int64_t(gamma.size()) != C || int64_t(beta.size()) != C)
    throw Error("quant: LayerNorm affine has " + std::to_string(gamma.size()) + " channels, params have " +
                std::to_string(C));
  if (cout <= 0 || int64_t(weight.size()) != cout * C || int64_t(bias.size()) != cout)
    throw Error("quant: linear layer after LayerNorm must be [cout, " + std::to_string(C) + "] with cout biases");

  std::vector<double> s(pc.scale.begin(), pc.scale.end()), z(pc.zero_point.begin(), pc.zero_point.end());
  double s_t, z_t;
  if (shared == SharedScale::kMean) {
    s_t = z_t = 0;
    for (int64_t c = 0; c < C; ++c) s_t += s[c], z_t += z[c];
    s_t /= C, z_t /= C;
  } else {
    s_t = median_of(s), z_t = median_of(z);
  }
  z_t = std::nearbyint(z_t);
  if (!(s_t > 0)) throw Error("quant: shared LayerNorm scale is not positive");

  LnReparam out;
  out.act = pc;
  out.act.gran = Granularity::kPerTensor;
  out.act.axis = 0;
  out.act.scale = {float(s_t)};
  out.act.zero_point = {int32_t(z_t)};
  out.r1.resize(C), out.r2.resize(C);
  out.gamma.resize(C), out.beta.resize(C);
  std::vector<double> shift(C);  // s * r2, the per-channel offset moved into beta
  for (int64_t c = 0; c < C; ++c) {
    out.r1[c] = s[c] / double(out.act.scale[0]);  // relative to the stored (float) shared scale
    out.r2[c] = int32_t(z[c] - z_t);
    shift[c] = s[c] * out.r2[c];
    out.gamma[c] = float(gamma[c] / out.r1[c]);
    out.beta[c] = float((beta[c] + shift[c]) / out.r1[c]);
  }
  out.weight.resize(weight.size());
  out.bias.resize(cout);
  for (int64_t o = 0; o < cout; ++o) {
    double acc = bias[o];
    for (int64_t c = 0; c < C; ++c) {
      out.weight[o * C + c] = float(weight[o * C + c] * out.r1[c]);
      acc -= double(weight[o * C + c]) * shift[c];
    }
    out.bias[o] = float(acc);
  }
  return out;
}

}  // namespace wavtok::quant
