// LSTM: float and int8 paths, with carried state for streaming.
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
#include "nn/lstm_int8.h"

namespace wavtok {

using dnnl::memory;

// ---------------------------------------------------------------- LSTM

Lstm::Lstm(const std::vector<Tensor>& w_ih, const std::vector<Tensor>& w_hh, const std::vector<Tensor>& b_ih,
           const std::vector<Tensor>& b_hh) {
  layers_ = static_cast<int>(w_ih.size());
  if (layers_ == 0 || w_hh.size() != w_ih.size() || b_ih.size() != w_ih.size() || b_hh.size() != w_ih.size())
    throw Error("Lstm: inconsistent layer weights");
  hidden_ = static_cast<int>(w_hh[0].dim(1));
  input_ = static_cast<int>(w_ih[0].dim(1));
  const int H = hidden_, G = 4;
  // oneDNN runs all layers in one primitive only when input width == hidden width (true for SLSTM).
  if (input_ != H) throw Error("Lstm: input width must equal hidden width");
  wl_ = Tensor({layers_, 1, input_, G, H});
  wi_ = Tensor({layers_, 1, H, G, H});
  bias_ = Tensor({layers_, 1, G, H});
  for (int l = 0; l < layers_; ++l) {
    if (w_ih[l].dim(0) != G * H || w_ih[l].dim(1) != input_ || w_hh[l].dim(0) != G * H || w_hh[l].dim(1) != H ||
        b_ih[l].numel() != G * H || b_hh[l].numel() != G * H)
      throw Error("Lstm: layer " + std::to_string(l) + " weights have unexpected shapes");
    for (int r = 0; r < G * H; ++r) {  // PyTorch row r = gate*H + h
      for (int i = 0; i < input_; ++i) wl_[((int64_t(l) * input_ + i) * G * H) + r] = w_ih[l][int64_t(r) * input_ + i];
      for (int i = 0; i < H; ++i) wi_[((int64_t(l) * H + i) * G * H) + r] = w_hh[l][int64_t(r) * H + i];
      bias_[int64_t(l) * G * H + r] = b_ih[l][r] + b_hh[l][r];
    }
  }
}

Lstm::State Lstm::initial_state() const {
  State s;
  s.h = Tensor({layers_, hidden_});
  s.c = Tensor({layers_, hidden_});
  return s;
}

void Lstm::set_int8(LstmInt8Params p) {
  if (p.weight_scale.size() != size_t(4) * hidden_ && p.weight_scale.size() != size_t(8) * layers_ * hidden_)
    throw Error("Lstm: int8 weight_scale has " + std::to_string(p.weight_scale.size()) + " values, want " +
                std::to_string(4 * hidden_) + " (shared by the layers) or " + std::to_string(8 * layers_ * hidden_) +
                " (per matrix)");
  for (float w : p.weight_scale)
    if (!(w > 0) || !std::isfinite(w)) throw Error("Lstm: int8 weight_scale holds a non-positive or non-finite value");
  if (!(p.data_scale > 0) || !std::isfinite(p.data_scale) || !std::isfinite(p.data_shift) || p.data_shift < 0 ||
      p.data_shift > 255 || !(p.in_divisor > 0) || !std::isfinite(p.in_divisor))
    throw Error("Lstm: bad int8 data scale, shift or input divisor");
  i8_.reset();
  if (LstmInt8Impl::supports(hidden_, p))
    i8_ = std::make_shared<const LstmInt8Impl>(layers_, hidden_, wl_.data(), wi_.data(), bias_.data(), p);
  else if (p.per_matrix(hidden_))
    throw Error("Lstm: int8 weight scales per matrix need an integral data shift (only the own kernels run them)");
  q_ = std::move(p);
  cache_.clear();
  wl_cache_.clear();
  wi_cache_.clear();
}

Lstm::Entry Lstm::make(int64_t T) const {
  const int64_t L = layers_, H = hidden_, G = 4;
  const bool i8 = q_.has_value();
  const ddt in_dt = i8 ? ddt::u8 : ddt::f32, w_dt = i8 ? ddt::s8 : ddt::f32;
  memory::desc src_md({T, 1, input_}, in_dt, dtag::tnc);
  memory::desc dst_md({T, 1, H}, ddt::f32, dtag::tnc);
  memory::desc src_iter_md({L, 1, 1, H}, in_dt, dtag::ldnc);
  memory::desc iter_md({L, 1, 1, H}, ddt::f32, dtag::ldnc);
  memory::desc wl_user({L, 1, input_, G, H}, ddt::f32, dtag::ldigo);
  memory::desc wi_user({L, 1, H, G, H}, ddt::f32, dtag::ldigo);
  memory::desc bias_md({L, 1, G, H}, ddt::f32, dtag::ldgo);
  memory::desc wl_any({L, 1, input_, G, H}, w_dt, dtag::any);
  memory::desc wi_any({L, 1, H, G, H}, w_dt, dtag::any);
  dnnl::primitive_attr attr = scratchpad_attr(), rattr;
  if (i8) {
    // oneDNN's RNN scales are multipliers: u8 = v * data_scale + shift, s8 = w * weights_scale.
    std::vector<float> ws(q_->weight_scale.size());
    for (size_t r = 0; r < ws.size(); ++r) ws[r] = 1.0f / q_->weight_scale[r];
    for (auto* a : {&attr, &rattr}) {
      a->set_rnn_data_qparams(q_->data_scale, q_->data_shift);
      a->set_rnn_weights_qparams((1 << 3) | (1 << 4), ws);  // per gate row (dims g, o of ldigo)
    }
  }
  dnnl::lstm_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::rnn_direction::unidirectional_left2right, src_md,
                             src_iter_md, iter_md, wl_any, wi_any, bias_md, dst_md, src_iter_md, iter_md);
  dnnl::lstm_forward::primitive_desc pd(d, attr, cpu_engine());  // int8: dst_iter must be u8 (oneDNN 2.6)
  auto weights = [&](const memory::desc& want, const memory::desc& have, const float* data) {
    if (!i8) return reorder_weights(want, have, data);
    // The int8 reorder quantizes with the scales above and adds the compensation of the u8 data shift.
    memory src = wrap(have, data), dst(want, cpu_engine());
    dnnl::stream s(cpu_engine());
    dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), have, cpu_engine(), want, rattr)).execute(s, src, dst);
    return dst;
  };
  const memory::desc wl_md = pd.weights_layer_desc(), wi_md = pd.weights_iter_desc();
  return Entry{dnnl::lstm_forward(pd),
               wl_cache_.get(wl_md, [&] { return weights(wl_md, wl_user, wl_.data()); }),
               wi_cache_.get(wi_md, [&] { return weights(wi_md, wi_user, wi_.data()); }),
               copy_to_memory(bias_md, bias_.data()),
               src_md,
               dst_md,
               iter_md,
               iter_md,
               src_iter_md};
}

void Lstm::forward(const float* x, int64_t T, float* y, State* state) const {
  if (T == 0) return;
  if (!q_ && t_observer && !name_.empty()) (*t_observer)(name_, x, T, input_, true, {});
  State local;
  if (!state) {
    local = initial_state();
    state = &local;
  }
  // oneDNN reads src_iter before writing dst_iter per cell, but keep them distinct to be safe.
  Tensor& h_out = state->h_next;
  Tensor& c_out = state->c_next;
  h_out.resize({layers_, hidden_});
  c_out.resize({layers_, hidden_});
  LstmInt8Kernel kernel = q_ ? lstm_int8_kernel() : LstmInt8Kernel::OneDnnRnn;
  // oneDNN's RNN has one weight scale per gate row for all matrices: per-matrix scales run on the own kernels.
  if (q_ && kernel == LstmInt8Kernel::OneDnnRnn && q_->per_matrix(hidden_))
    kernel =
        lstm_int8_kernel_supported(LstmInt8Kernel::Avx512Vnni) ? LstmInt8Kernel::Avx512Vnni : LstmInt8Kernel::Portable;
  if (i8_ && kernel != LstmInt8Kernel::OneDnnRnn) {
    i8_->forward(x, T, y, state->h.data(), state->c.data(), h_out.data(), c_out.data(), kernel);
    std::swap(state->h, state->h_next);
    std::swap(state->c, state->c_next);
    return;
  }
  auto e = cache_.get(T, [&] { return make(T); });
  memory src, src_iter, dst_iter;
  thread_local std::vector<uint8_t> hq_out;
  if (q_) {
    // u8 inputs: the layer-0 input and the carried hidden state (f32 between chunks; requantizing it gives the
    // codes oneDNN would have used inside one longer call).
    thread_local std::vector<uint8_t> xq, hq;
    const int64_t n = T * input_, nh = int64_t(layers_) * hidden_;
    if (xq.size() < size_t(n)) xq.resize(size_t(n));
    if (hq.size() < size_t(nh)) hq.resize(size_t(nh));
    const float k = q_->data_scale / q_->in_divisor, s = q_->data_scale, z = q_->data_shift;
    for (int64_t i = 0; i < n; ++i) xq[i] = uint8_t(std::clamp(std::nearbyint(x[i] * k + z), 0.0f, 255.0f));
    const float* h = state->h.data();
    for (int64_t i = 0; i < nh; ++i) hq[i] = uint8_t(std::clamp(std::nearbyint(h[i] * s + z), 0.0f, 255.0f));
    src = memory(e->src_md, cpu_engine(), xq.data());
    src_iter = memory(e->src_iter_md, cpu_engine(), hq.data());
    if (hq_out.size() < size_t(nh)) hq_out.resize(size_t(nh));
    dst_iter = memory(e->src_iter_md, cpu_engine(), hq_out.data());
  } else {
    src = wrap(e->src_md, x);
    src_iter = wrap(e->src_iter_md, state->h.data());
    dst_iter = wrap(e->iter_md, h_out.data());
  }
  run_primitive(e->prim, {{DNNL_ARG_SRC_LAYER, src},
                          {DNNL_ARG_SRC_ITER, src_iter},
                          {DNNL_ARG_SRC_ITER_C, wrap(e->iter_c_md, state->c.data())},
                          {DNNL_ARG_WEIGHTS_LAYER, e->wl},
                          {DNNL_ARG_WEIGHTS_ITER, e->wi},
                          {DNNL_ARG_BIAS, e->bias},
                          {DNNL_ARG_DST_LAYER, wrap(e->dst_md, y)},
                          {DNNL_ARG_DST_ITER, dst_iter},
                          {DNNL_ARG_DST_ITER_C, wrap(e->iter_c_md, c_out.data())}});
  if (q_) {  // the u8 hidden state back to f32 (requantizing it next chunk gives these codes again)
    const float inv = 1.0f / q_->data_scale, z = q_->data_shift;
    for (int64_t i = 0; i < int64_t(layers_) * hidden_; ++i) h_out[i] = (float(hq_out[i]) - z) * inv;
  }
  std::swap(state->h, state->h_next);
  std::swap(state->c, state->c_next);
}

}  // namespace wavtok
