// LayerNorm and the per-channel affine (GroupNorm folded / AffineNorm), optionally fused with SiLU.
#include "nn/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "nn/layer_support.h"

namespace wavtok {

using dnnl::memory;

// ---------------------------------------------------------------- LayerNorm

LayerNorm::Entry LayerNorm::make(int64_t rows) const {
  memory::desc md({rows, c_}, ddt::f32, dtag::ab);
  memory::desc ss_md({c_}, ddt::f32, dtag::a);
  dnnl::layer_normalization_forward::desc d(
      dnnl::prop_kind::forward_inference, md, eps_,
      dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
  dnnl::layer_normalization_forward::primitive_desc pd(d, scratchpad_attr(), cpu_engine());
  return Entry{dnnl::layer_normalization_forward(pd), md, ss_md};
}

void LayerNorm::forward(const float* x, int64_t rows, float* y, const float* scale, const float* shift) const {
  if (rows == 0) return;
  auto e = cache_.get(rows, [&] { return make(rows); });
  run_primitive(e->prim, {{DNNL_ARG_SRC, wrap(e->md, x)},
                          {DNNL_ARG_DST, wrap(e->md, y)},
                          {DNNL_ARG_SCALE, wrap(e->ss_md, scale)},
                          {DNNL_ARG_SHIFT, wrap(e->ss_md, shift)}});
}

// ---------------------------------------------------------------- GroupNorm

void channel_affine_tc(const float* x, int64_t T, int C, const float* gamma, const float* beta, float* y, bool silu) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* yr = y + t * C;
    if (silu) {
      for (int c = 0; c < C; ++c) yr[c] = silu_value(xr[c] * gamma[c] + beta[c]);
    } else {
      for (int c = 0; c < C; ++c) yr[c] = xr[c] * gamma[c] + beta[c];
    }
  }
}

void group_norm_tc(const float* x, int64_t T, int C, int groups, float eps, const float* gamma, const float* beta,
                   float* y, bool silu) {
  const int cg = C / groups;
  // Per-thread buffers: a streaming decoder normalises every window, and its steady state should not allocate.
  thread_local std::vector<double> sum, sq;
  thread_local std::vector<float> mean, inv;
  sum.assign(size_t(groups), 0.0);
  sq.assign(size_t(groups), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * C;
    for (int g = 0; g < groups; ++g) {
      double s = 0, q = 0;
      for (int c = g * cg; c < (g + 1) * cg; ++c) {
        s += row[c];
        q += double(row[c]) * row[c];
      }
      sum[g] += s;
      sq[g] += q;
    }
  }
  // The group statistics spread per channel, so that the normalising loop is a plain vectorisable one.
  mean.resize(size_t(C));
  inv.resize(size_t(C));
  const double n = double(T) * cg;
  for (int g = 0; g < groups; ++g) {
    const double m = sum[g] / n;
    const double var = std::max(0.0, sq[g] / n - m * m);
    std::fill_n(mean.begin() + g * cg, cg, static_cast<float>(m));
    std::fill_n(inv.begin() + g * cg, cg, static_cast<float>(1.0 / std::sqrt(var + eps)));
  }
  const float* mc = mean.data();
  const float* ic = inv.data();
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * C;
    float* out = y + t * C;
    if (silu) {
      for (int c = 0; c < C; ++c) out[c] = silu_value((row[c] - mc[c]) * ic[c] * gamma[c] + beta[c]);
    } else {
      for (int c = 0; c < C; ++c) out[c] = (row[c] - mc[c]) * ic[c] * gamma[c] + beta[c];
    }
  }
}

}  // namespace wavtok
