#include "models/vocos.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"
#include "models/quantized.h"

namespace wavtok {
namespace {

constexpr float kGroupNormEps = 1e-6f;
constexpr int kGroups = 32;

// Zero-pads T rows of C channels by p on both sides (nn.Conv1d's padding=p).
void pad_rows(const float* x, int64_t T, int64_t C, int64_t p, Tensor& out) {
  out.resize({T + 2 * p, C});
  std::fill(out.data(), out.data() + p * C, 0.0f);
  std::copy(x, x + T * C, out.data() + p * C);
  std::fill(out.data() + (T + p) * C, out.data() + (T + 2 * p) * C, 0.0f);
}
void pad_rows(const Tensor& x, int64_t p, Tensor& out) { pad_rows(x.data(), x.dim(0), x.dim(1), p, out); }

// 1x1 conv weight [Cout, Cin, 1] as a Linear weight [Cout, Cin].
Tensor squeeze_last(const Tensor& t) {
  return Tensor({t.dim(0), t.dim(1)}, std::vector<float>(t.data(), t.data() + t.numel()));
}

}  // namespace

VocosBackbone::NormParams VocosBackbone::load_norm(const WeightMap& w, const std::string& name) const {
  NormParams p;
  if (c_.adanorm_num_embeddings > 0) {
    p.scale = w.get(name + ".scale.weight", {c_.adanorm_num_embeddings, c_.dim});
    p.shift = w.get(name + ".shift.weight", {c_.adanorm_num_embeddings, c_.dim});
  } else {
    p.scale = w.get(name + ".weight", {c_.dim});
    p.shift = w.get(name + ".bias", {c_.dim});
  }
  return p;
}

VocosBackbone::VocosBackbone(const WeightMap& w, const std::string& prefix, const VocosConfig& c)
    : c_(c), ln_(c.dim, 1e-6f) {
  const int D = c.dim;
  embed_ = Conv1d(w.get(prefix + "embed.weight", {D, c.input_channels, 7}), w.get(prefix + "embed.bias", {D}), 1, 1, 1,
                  true);
  setup_layer(embed_, w, prefix + "embed");  // int8 when the model file quantizes it (models/quantized.h)
  auto load_res = [&](int i) {
    const std::string n = prefix + "pos_net." + std::to_string(i);
    ResBlock b;
    b.n1w = w.get(n + ".norm1.weight", {D});
    b.n1b = w.get(n + ".norm1.bias", {D});
    b.n2w = w.get(n + ".norm2.weight", {D});
    b.n2b = w.get(n + ".norm2.bias", {D});
    b.conv1 = Conv1d(w.get(n + ".conv1.weight", {D, D, 3}), w.get(n + ".conv1.bias", {D}), 1, 1, 1, true);
    b.conv2 = Conv1d(w.get(n + ".conv2.weight", {D, D, 3}), w.get(n + ".conv2.bias", {D}), 1, 1, 1, true);
    setup_layer(b.conv1, w, n + ".conv1");
    setup_layer(b.conv2, w, n + ".conv2");
    return b;
  };
  pre_res_.push_back(load_res(0));
  pre_res_.push_back(load_res(1));
  {
    const std::string n = prefix + "pos_net.2";
    attn_.nw = w.get(n + ".norm.weight", {D});
    attn_.nb = w.get(n + ".norm.bias", {D});
    attn_.q = Linear(squeeze_last(w.get(n + ".q.weight", {D, D, 1})), w.get(n + ".q.bias", {D}));
    attn_.k = Linear(squeeze_last(w.get(n + ".k.weight", {D, D, 1})), w.get(n + ".k.bias", {D}));
    attn_.v = Linear(squeeze_last(w.get(n + ".v.weight", {D, D, 1})), w.get(n + ".v.bias", {D}));
    attn_.proj = Linear(squeeze_last(w.get(n + ".proj_out.weight", {D, D, 1})), w.get(n + ".proj_out.bias", {D}));
    setup_layer(attn_.q, w, n + ".q");
    setup_layer(attn_.k, w, n + ".k");
    setup_layer(attn_.v, w, n + ".v");
    setup_layer(attn_.proj, w, n + ".proj_out");
    setup_attention(attn_.core, w, n);  // post-softmax quantizer, when the file has one
    attn_.core.set_window(c.attention_left, c.attention_right);
  }
  post_res_.push_back(load_res(3));
  post_res_.push_back(load_res(4));
  pos_norm_w_ = w.get(prefix + "pos_net.5.weight", {D});
  pos_norm_b_ = w.get(prefix + "pos_net.5.bias", {D});
  norm_ = load_norm(w, prefix + "norm");
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string n = prefix + "convnext." + std::to_string(i);
    Block b;
    b.dwconv = Conv1d(w.get(n + ".dwconv.weight", {D, 1, 7}), w.get(n + ".dwconv.bias", {D}), 1, 1, D, true);
    setup_layer(b.dwconv, w, n + ".dwconv");  // int8 when the recipe has a transform: channel rule for it
    b.norm = load_norm(w, n + ".norm");
    b.pw1 = Linear(w.get(n + ".pwconv1.weight", {c.intermediate_dim, D}),
                   w.get(n + ".pwconv1.bias", {c.intermediate_dim}), Act::Gelu);
    b.pw2 = Linear(w.get(n + ".pwconv2.weight", {D, c.intermediate_dim}), w.get(n + ".pwconv2.bias", {D}));
    if (w.has(n + ".gamma")) b.gamma = Tensor::share_or_copy(w.get(n + ".gamma", {D}));
    setup_layer(b.pw1, w, n + ".pwconv1");
    if (b.pw2.name().empty() && w.has(n + ".pwconv2.act_quant") && w.has(n + ".gamma"))
      throw Error(w.origin() + ": " + n + ".pwconv2 is quantized but gamma was not folded into it");
    setup_layer(b.pw2, w, n + ".pwconv2");
    // A low-rank adapter (RILQ) needs its layer's float input, which a chained layer never sees.
    if (b.pw1.is_int8() && b.pw2.is_int8() && b.gamma.empty() && !b.pw1.has_lowrank() && !b.pw2.has_lowrank() &&
        int8_chaining()) {
      b.pw1.chain_to(b.pw2);
      b.chain = true;
      if (!b.dwconv.is_int8()) {  // the fused float front (an int8 dwconv runs its primitive, see forward)
        const Tensor& dw = b.dwconv.weight();  // [D, 1, 7]
        b.dw_kc = Tensor({7, D});
        for (int k = 0; k < 7; ++k)
          for (int d = 0; d < D; ++d) b.dw_kc[int64_t(k) * D + d] = dw[int64_t(d) * 7 + k];
        b.dw_b = Tensor::share_or_copy(b.dwconv.bias());
      }
    }
    blocks_.push_back(std::move(b));
  }
  final_w_ = w.get(prefix + "final_layer_norm.weight", {D});
  final_b_ = w.get(prefix + "final_layer_norm.bias", {D});
}

void VocosBackbone::pos_norm(const float* x, int64_t T, const Tensor& w, const Tensor& b, float* y, bool silu) const {
  if (c_.pos_net_norm == "affine") channel_affine_tc(x, T, c_.dim, w.data(), b.data(), y, silu);
  else group_norm_tc(x, T, c_.dim, kGroups, kGroupNormEps, w.data(), b.data(), y, silu);
}

void VocosBackbone::resblock(const ResBlock& b, Tensor& x, Tensor& t1, Tensor& t2) const {
  const int64_t T = x.dim(0);
  const int D = c_.dim;
  t1.resize({T, D});
  pos_norm(x.data(), T, b.n1w, b.n1b, t1.data(), true);
  pad_rows(t1, 1, t2);
  t1.resize({T, D});
  b.conv1.forward(t2.data(), T + 2, t1.data());
  pos_norm(t1.data(), T, b.n2w, b.n2b, t1.data(), true);
  pad_rows(t1, 1, t2);
  b.conv2.forward(t2.data(), T + 2, x.data(), /*accumulate=*/true);
}

void VocosBackbone::attention(const Attn& a, Tensor& x, Tensor& t1, Tensor& t2) const {
  const int64_t T = x.dim(0);
  const int D = c_.dim;
  t1.resize({T, D});
  pos_norm(x.data(), T, a.nw, a.nb, t1.data(), false);
  Tensor &q = scratch_tensor(this, 10), &k = scratch_tensor(this, 11), &v = scratch_tensor(this, 12),
         &scores = scratch_tensor(this, 13);
  q.resize({T, D});
  k.resize({T, D});
  v.resize({T, D});
  a.q.forward(t1.data(), T, q.data());
  a.k.forward(t1.data(), T, k.data());
  a.v.forward(t1.data(), T, v.data());
  a.core.forward(q.data(), k.data(), v.data(), T, D, t1.data(), scores);
  a.proj.forward(t1.data(), T, x.data(), /*accumulate=*/true);
}

Tensor VocosBackbone::forward(const float* features, int64_t F, int bandwidth_id) const {
  Tensor x;
  forward(features, F, bandwidth_id, x);
  return x;
}

void VocosBackbone::forward(const float* features, int64_t F, int bandwidth_id, Tensor& x, int64_t want_from,
                            int64_t want_to, EmbedReuse* reuse, int64_t window_start) const {
  if (c_.causal)
    throw Error("backbone: a causal backbone decodes frame by frame (models/causal_stream.h), not in windows");
  const int64_t a = std::max<int64_t>(0, want_from), b = std::min(F, want_to);
  if (F > 0 && a >= b)
    throw Error("backbone: wanted frames [" + std::to_string(want_from) + ", " + std::to_string(want_to) +
                ") hold none of the " + std::to_string(F) + "-frame input");
  if (bandwidth_id < 0 || bandwidth_id >= num_bandwidths())
    throw Error("bandwidth id " + std::to_string(bandwidth_id) + " out of range 0.." +
                std::to_string(num_bandwidths() - 1));
  const int D = c_.dim, Cin = c_.input_channels;
  // [Cin, F] -> zero-padded [F + 6, Cin] for the k=7, padding=3 embedding conv.
  Tensor& in = scratch_tensor(this, 0);
  in.resize({F + 6, Cin});
  std::fill(in.data(), in.data() + in.numel(), 0.0f);
  for (int c = 0; c < Cin; ++c)
    for (int64_t t = 0; t < F; ++t) in[(t + 3) * Cin + c] = features[c * F + t];
  x.resize({F, D});
  Tensor &t1 = scratch_tensor(this, 1), &t2 = scratch_tensor(this, 2);
  // Rows [c0, c1) come from the previous window when it computed them with all 7 taps inside it (rows 3 .. F-4
  // of a window have theirs inside this one too); the rest are computed, [0, c0) and [c1, F) apart.
  int64_t c0 = 0, c1 = 0;
  if (reuse && reuse->n > 0) {
    c0 = std::max<int64_t>(3, reuse->first - window_start);
    c1 = std::min<int64_t>(F - 3, reuse->first + reuse->n - window_start);
    if (c1 <= c0) c0 = c1 = 0;
  }
  if (c1 > c0) {
    std::copy_n(reuse->rows.data() + (window_start + c0 - reuse->first) * D, (c1 - c0) * D, x.data() + c0 * D);
    if (c0 > 0) embed_.forward(in.data(), c0 + 6, x.data());
    if (c1 < F) embed_.forward(in.data() + c1 * Cin, F - c1 + 6, x.data() + c1 * D);
  } else {
    embed_.forward(in.data(), F + 6, x.data());
  }
  if (reuse) {
    reuse->n = std::max<int64_t>(0, F - 6);
    reuse->first = window_start + 3;
    reuse->rows.resize({std::max<int64_t>(reuse->n, 1), D});
    std::copy_n(x.data() + 3 * D, reuse->n * D, reuse->rows.data());
  }
  for (const auto& b : pre_res_) resblock(b, x, t1, t2);
  attention(attn_, x, t1, t2);
  // After pos_net, the rows [lo, hi) that still reach the wanted ones with k ConvNeXt blocks to go are the wanted
  // rows widened by 3 per block (the depthwise k7 conv), clamped to the window (whose own ends are zero-padded, as
  // in the uncropped run).
  const int64_t L = int64_t(blocks_.size());
  auto lo_of = [&](int64_t k) { return std::max<int64_t>(0, a - 3 * k); };
  auto hi_of = [&](int64_t k) { return std::min<int64_t>(F, b + 3 * k); };
  int64_t base = 0;  // the window row that x's row 0 holds
  if (c_.local() && F > 0) {
    // A local pos_net (per-channel affines, banded attention) narrows too: each ResnetBlock after the attention
    // reaches 2 frames (two k3 convs), so it runs only on the rows that reach the ConvNeXt blocks' first rows.
    auto keep = [&](int64_t r) {
      const int64_t nlo = std::max<int64_t>(0, lo_of(L) - r), nhi = std::min<int64_t>(F, hi_of(L) + r);
      if (nlo > base) std::memmove(x.data(), x.data() + (nlo - base) * D, size_t((nhi - nlo) * D) * sizeof(float));
      x.resize({nhi - nlo, D});
      base = nlo;
    };
    int64_t r = 2 * int64_t(post_res_.size());
    for (const auto& blk : post_res_) {
      keep(r);
      resblock(blk, x, t1, t2);
      r -= 2;
    }
    keep(0);
  } else {
    for (const auto& blk : post_res_) resblock(blk, x, t1, t2);
  }
  pos_norm(x.data(), x.dim(0), pos_norm_w_, pos_norm_b_, x.data(), false);
  if (F == 0) return;
  int64_t lo = lo_of(L), hi = hi_of(L);
  float* xs = x.data() + (lo - base) * D;  // the rows in use
  const int64_t row = c_.adanorm_num_embeddings > 0 ? bandwidth_id : 0;
  ln_.forward(xs, hi - lo, xs, norm_.scale.data() + row * D, norm_.shift.data() + row * D);
  Tensor& h = scratch_tensor(this, 3);
  for (int64_t i = 0; i < L; ++i) {
    const auto& blk = blocks_[size_t(i)];
    report_progress("decode", double(i) / double(L));
    // The depthwise conv over the rows in use; only its output rows that reach the wanted ones go on.
    const int64_t n = hi - lo;
    if (blk.chain) {
      // int8 kept end to end: depthwise conv + LayerNorm -> u8 codes -> pwconv1 (GELU, requantized in its
      // post-ops) -> u8 codes -> pwconv2 adding into the residual rows. Thread-local code buffers: a stream's
      // windows reuse them, so the steady state allocates nothing.
      const int64_t nlo = lo_of(L - 1 - i), nhi = hi_of(L - 1 - i), m = nhi - nlo;
      thread_local std::vector<uint8_t> c1, c2;
      if (c1.size() < size_t(m * D)) c1.resize(size_t(m * D));
      if (c2.size() < size_t(m * c_.intermediate_dim)) c2.resize(size_t(m * c_.intermediate_dim));
      if (blk.dwconv.is_int8()) {
        // int8 depthwise primitive (per-channel u8 inputs) on the m output rows wanted, float out, then the
        // LayerNorm straight to pwconv1's codes.
        pad_rows(xs, n, D, 3, t2);
        t1.resize({m, D});
        blk.dwconv.forward(t2.data() + (nlo - lo) * D, m + 6, t1.data());
        layer_norm_to_codes(t1.data(), m, D, ln_.eps(), blk.norm.scale.data() + row * D,
                            blk.norm.shift.data() + row * D, blk.pw1, c1.data());
      } else {
        dwconv_layer_norm_to_codes(xs, n, nlo - lo, m, D, 7, blk.dw_kc.data(), blk.dw_b.data(), ln_.eps(),
                                   blk.norm.scale.data() + row * D, blk.norm.shift.data() + row * D, blk.pw1,
                                   c1.data());
      }
      xs += (nlo - lo) * D;
      lo = nlo, hi = nhi;
      blk.pw1.forward_codes_to_codes(c1.data(), m, c2.data());
      blk.pw2.forward_codes(c2.data(), m, xs, /*accumulate=*/true);
      continue;
    }
    pad_rows(xs, n, D, 3, t2);
    t1.resize({n, D});
    blk.dwconv.forward(t2.data(), n + 6, t1.data());
    const int64_t nlo = lo_of(L - 1 - i), nhi = hi_of(L - 1 - i), m = nhi - nlo;
    float* y = t1.data() + (nlo - lo) * D;
    xs += (nlo - lo) * D;
    lo = nlo, hi = nhi;
    ln_.forward(y, m, y, blk.norm.scale.data() + row * D, blk.norm.shift.data() + row * D);
    h.resize({m, c_.intermediate_dim});
    blk.pw1.forward(y, m, h.data());
    if (blk.gamma.empty()) {
      blk.pw2.forward(h.data(), m, xs, /*accumulate=*/true);
      continue;
    }
    Tensor& z = scratch_tensor(this, 4);
    z.resize({m, D});
    blk.pw2.forward(h.data(), m, z.data());
    const float* g = blk.gamma.data();
    for (int64_t t = 0; t < m; ++t) {
      float* xr = xs + t * D;
      const float* zr = z.data() + t * D;
      for (int d = 0; d < D; ++d) xr[d] += g[d] * zr[d];
    }
  }
  ln_.forward(xs, hi - lo, xs, final_w_.data(), final_b_.data());
  if (xs != x.data()) std::memmove(x.data(), xs, size_t((hi - lo) * D) * sizeof(float));
  x.resize({hi - lo, D});
}

IstftHead::IstftHead(const WeightMap& w, const std::string& prefix, const VocosConfig& c)
    : c_(c), out_(w.get(prefix + "out.weight", {c.n_fft + 2, c.dim}), w.get(prefix + "out.bias", {c.n_fft + 2})) {
  setup_layer(out_, w, prefix + "out");
}

std::vector<float> IstftHead::forward(const float* hidden, int64_t F) const {
  Scratch scratch;  // per call: Istft keeps scratch state, and calls may run concurrently
  std::vector<float> audio;
  forward(hidden, F, audio, scratch);
  return audio;
}

void IstftHead::forward(const float* hidden, int64_t F, std::vector<float>& audio, Scratch& s) const {
  const int bins = c_.n_fft / 2 + 1;
  s.spec.resize({F, 2 * bins});
  out_.forward(hidden, F, s.spec.data());
  s.re.resize(size_t(F * bins));
  s.im.resize(size_t(F * bins));
  for (int64_t t = 0; t < F; ++t) {
    const float* r = s.spec.data() + t * 2 * bins;
    magphase_to_complex(r, r + bins, bins, s.re.data() + t * bins, s.im.data() + t * bins);
  }
  if (!s.istft) s.istft = std::make_unique<Istft>(c_.n_fft, c_.hop);
  audio.resize(size_t(s.istft->output_length(F)));
  s.istft->inverse(s.re.data(), s.im.data(), F, audio.data());
}

}  // namespace wavtok
