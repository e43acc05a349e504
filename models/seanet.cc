#include "models/seanet.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "io/model_file.h"
#include "models/quantized.h"

namespace wavtok {

void pad1d(const float* x, int C, int64_t T, int64_t left, int64_t right, bool reflect, Tensor& out, Act act) {
  const int64_t To = T + left + right;
  out.resize({To, C});
  // Reflect padding needs more samples than the pad; EnCodec zero-extends short inputs first.
  const int64_t max_pad = std::max(left, right);
  const int64_t extra = (reflect && T <= max_pad) ? max_pad - T + 1 : 0;
  const int64_t Te = T + extra;  // length of the (virtually) zero-extended signal
  float* dst = out.data();
  auto put_row = [&](int64_t to, int64_t from) {  // from: index into the extended signal
    if (from < T) apply_act_copy(act, x + from * C, dst + to * C, C);
    else std::fill(dst + to * C, dst + (to + 1) * C, 0.0f);
  };
  for (int64_t i = 0; i < left; ++i) {
    if (reflect) put_row(i, left - i);
    else std::fill(dst + i * C, dst + (i + 1) * C, 0.0f);
  }
  apply_act_copy(act, x, dst + left * C, T * C);
  for (int64_t i = 0; i < right; ++i) {
    const int64_t p = T + i;  // position in the extended signal; reflect around Te - 1
    if (reflect) put_row(left + T + i, p < Te ? p : 2 * (Te - 1) - p);
    else std::fill(dst + (left + T + i) * C, dst + (left + T + i + 1) * C, 0.0f);
  }
}

// ---------------------------------------------------------------- SConv1d

SConv1d::SConv1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride, int dilation,
                 bool causal, bool reflect, Act post)
    : conv_(w.get(name + ".weight", {cout, cin, kernel}), w.get(name + ".bias", {cout}), stride, dilation, 1, true,
            post),
      causal_(causal),
      reflect_(reflect) {
  setup_layer(conv_, w, name);  // calibration name; int8 when the model file quantizes this conv
}

int64_t SConv1d::extra_padding(int64_t tin) const {
  const int64_t k = int64_t(conv_.dilation()) * (conv_.kernel() - 1) + 1;
  const int64_t s = conv_.stride();
  const int64_t total = k - s;
  // frames = ceil((tin - k + total) / s + 1); ideal = (frames - 1) * s + k - total
  const int64_t num = tin - k + total;
  int64_t frames = num >= 0 ? (num + s - 1) / s + 1 : -((-num) / s) + 1;
  const int64_t ideal = (frames - 1) * s + k - total;
  return ideal - tin;
}

int64_t SConv1d::out_len(int64_t tin) const { return conv_.out_len(tin + padding_total() + extra_padding(tin)); }

void SConv1d::forward(const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate) const {
  forward_act(Act::None, x, y, scratch, accumulate);
}

void SConv1d::forward_act(Act act, const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate) const {
  const int64_t T = x.dim(0);
  const int64_t total = padding_total(), extra = extra_padding(T);
  int64_t left, right;
  if (causal_) {
    left = total;
    right = extra;
  } else {
    right = total / 2;
    left = total - right;
    right += extra;
  }
  const float* src = x.data();
  int64_t Tp = T;
  if (left || right || act != Act::None) {
    pad1d(x.data(), conv_.in_channels(), T, left, right, reflect_, scratch, act);
    src = scratch.data();
    Tp = T + left + right;
  }
  const int64_t To = conv_.out_len(Tp);
  if (!accumulate) y.resize({To, conv_.out_channels()});
  else if (y.dim(1) != conv_.out_channels() || y.dim(0) != To) throw Error("SConv1d: accumulate shape mismatch");
  conv_.forward(src, Tp, y.data(), accumulate);
}

// ---------------------------------------------------------------- SConvTranspose1d

SConvTranspose1d::SConvTranspose1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel,
                                   int stride, bool causal)
    : causal_(causal) {
  // An int8 transposed conv stores its weight output-major [Cout, Cin, K] like every int8 layer (models/quantized.h).
  if (w.has(name + ".act_quant")) {
    const Tensor& wo = w.get(name + ".weight", {cout, cin, kernel});
    Tensor wi({cin, cout, kernel});
    for (int o = 0; o < cout; ++o)
      for (int i = 0; i < cin; ++i)
        for (int k = 0; k < kernel; ++k)
          wi[(int64_t(i) * cout + o) * kernel + k] = wo[(int64_t(o) * cin + i) * kernel + k];
    conv_ = ConvTranspose1d(wi, w.get(name + ".bias", {cout}), stride, true);
  } else {
    conv_ = ConvTranspose1d(w.get(name + ".weight", {cin, cout, kernel}), w.get(name + ".bias", {cout}), stride, true);
  }
  setup_layer(conv_, w, name);  // calibration name; int8 when the model file quantizes this conv
}

void SConvTranspose1d::forward(const Tensor& x, Tensor& y, Tensor& scratch) const {
  const int64_t T = x.dim(0);
  const int64_t Tfull = conv_.out_len(T);
  scratch.resize({Tfull, conv_.out_channels()});
  conv_.forward(x.data(), T, scratch.data());
  const int64_t total = conv_.kernel() - conv_.stride();
  int64_t left, right;
  if (causal_) {
    right = total;  // trim_right_ratio = 1
    left = 0;
  } else {
    right = total / 2;
    left = total - right;
  }
  const int64_t To = Tfull - left - right;
  const int64_t C = conv_.out_channels();
  y.resize({To, C});
  std::copy(scratch.data() + left * C, scratch.data() + (left + To) * C, y.data());
}

// ---------------------------------------------------------------- blocks

SeanetResBlock::SeanetResBlock(const WeightMap& w, const std::string& name, int dim, const SeanetConfig& c,
                               int dilation)
    : true_skip_(c.true_skip) {
  const int hidden = dim / c.compress;
  const bool reflect = c.pad_mode == "reflect";
  conv1_ = SConv1d(w, name + ".block.1.conv.conv", dim, hidden, c.residual_kernel_size, 1, dilation, c.causal, reflect,
                   Act::Elu);
  conv2_ = SConv1d(w, name + ".block.3.conv.conv", hidden, dim, 1, 1, 1, c.causal, reflect);
  if (!true_skip_) shortcut_ = SConv1d(w, name + ".shortcut.conv.conv", dim, dim, 1, 1, 1, c.causal, reflect);
}

void SeanetResBlock::forward(const Tensor& x, Tensor& y, Tensor& t1, Tensor& t2, Tensor& t3) const {
  // y = shortcut(x); then y += conv2(elu(conv1(elu(x)))) through the conv's sum post-op.
  if (true_skip_) {
    y = x;
  } else {
    shortcut_.forward(x, y, t3);
  }
  (void)t1;
  conv1_.forward_act(Act::Elu, x, t2, t3);  // ELU(x) made while padding; conv1's ELU fused as post-op
  conv2_.forward(t2, y, t3, /*accumulate=*/true);
}

SLstm::SLstm(const WeightMap& w, const std::string& name, int dim, int layers) {
  std::vector<Tensor> wih, whh, bih, bhh;
  for (int l = 0; l < layers; ++l) {
    const std::string s = std::to_string(l);
    wih.push_back(w.get(name + ".lstm.weight_ih_l" + s, {4 * dim, dim}));
    whh.push_back(w.get(name + ".lstm.weight_hh_l" + s, {4 * dim, dim}));
    bih.push_back(w.get(name + ".lstm.bias_ih_l" + s, {4 * dim}));
    bhh.push_back(w.get(name + ".lstm.bias_hh_l" + s, {4 * dim}));
  }
  lstm_ = Lstm(wih, whh, bih, bhh);
  setup_layer(lstm_, w, name + ".lstm");
}

void SLstm::forward_stream(const Tensor& x, Tensor& y, Lstm::State& state) const {
  const int64_t T = x.dim(0), C = x.dim(1);
  y.resize({T, C});
  if (T == 0) return;
  lstm_.forward(x.data(), T, y.data(), &state);
  for (int64_t i = 0; i < T * C; ++i) y[i] += x[i];
}

void SLstm::forward(const Tensor& x, Tensor& y, Tensor& t1, Tensor& t2) const {
  (void)t1;
  (void)t2;
  const int64_t T = x.dim(0), C = x.dim(1);
  y.resize({T, C});
  lstm_.forward(x.data(), T, y.data());
  for (int64_t i = 0; i < T * C; ++i) y[i] += x[i];  // skip connection
}

// ---------------------------------------------------------------- encoder

SeanetEncoder::SeanetEncoder(const WeightMap& w, const std::string& prefix, const SeanetConfig& c) : cfg_(c) {
  const bool reflect = c.pad_mode == "reflect";
  int mult = 1;
  int idx = 0;
  auto name = [&](int i) { return prefix + "model." + std::to_string(i); };
  first_ = SConv1d(w, name(idx++) + ".conv.conv", c.channels, c.n_filters, c.kernel_size, 1, 1, c.causal, reflect);
  for (auto it = c.ratios.rbegin(); it != c.ratios.rend(); ++it) {
    Stage st;
    int dil = 1;
    for (int j = 0; j < c.n_residual_layers; ++j, dil *= c.dilation_base)
      st.res.emplace_back(w, name(idx++), mult * c.n_filters, c, dil);
    idx++;  // ELU
    st.down = SConv1d(w, name(idx++) + ".conv.conv", mult * c.n_filters, mult * c.n_filters * 2, *it * 2, *it, 1,
                      c.causal, reflect);
    stages_.push_back(std::move(st));
    mult *= 2;
  }
  if (c.lstm_layers > 0) {
    lstm_ = SLstm(w, name(idx++), mult * c.n_filters, c.lstm_layers);
    has_lstm_ = true;
  }
  idx++;  // ELU
  last_ = SConv1d(w, name(idx++) + ".conv.conv", mult * c.n_filters, c.dimension, c.last_kernel_size, 1, 1, c.causal,
                  reflect);
  // bf16 here would move latents enough to change tokens: the encoder computes in float32 at every process
  // precision, unless its model file asks for bf16 convs (a recipe measured with them, docs/PTQ.md).
  const std::string flag = prefix + kEncoderConvBf16;
  if (w.has(flag)) {
    if (w.get(flag, {1})[0] != 1.0f) throw Error(w.origin() + ": " + flag + " must be [1]");
    bf16_convs_ = true;
  }
  first_.keep_f32();
  last_.keep_f32();
  for (auto& st : stages_) {
    st.down.keep_f32();
    for (auto& rb : st.res) rb.keep_f32();
  }
  if (bf16_convs_) {
    first_.force_bf16();
    last_.force_bf16();
    for (auto& st : stages_) {
      st.down.force_bf16();
      for (auto& rb : st.res) rb.force_bf16();
    }
  }
  // Precision::F64 accumulates every encoder conv in float64 (the LSTM and the decoders stay float32).
  first_.allow_f64();
  last_.allow_f64();
  for (auto& st : stages_) {
    st.down.allow_f64();
    for (auto& rb : st.res) rb.allow_f64();
  }
}

int64_t SeanetEncoder::frames(int64_t T) const {
  int64_t t = first_.out_len(T);
  for (const auto& st : stages_) t = st.down.out_len(t);
  return last_.out_len(t);
}

Tensor SeanetEncoder::forward(const float* audio, int64_t T) const {
  Tensor& x = scratch_tensor(this, 0);
  x.resize({T, 1});
  std::copy(audio, audio + T, x.data());
  Tensor &y = scratch_tensor(this, 1), &t1 = scratch_tensor(this, 2), &t2 = scratch_tensor(this, 3),
         &t3 = scratch_tensor(this, 4);
  first_.forward(x, y, t3);
  std::swap(x, y);
  const double steps = double(stages_.size() + 2);
  for (size_t i = 0; i < stages_.size(); ++i) {
    const auto& st = stages_[i];
    for (const auto& rb : st.res) {
      rb.forward(x, y, t1, t2, t3);
      std::swap(x, y);
    }
    st.down.forward_act(Act::Elu, x, y, t3);
    std::swap(x, y);
    report_progress("encode", (i + 1) / steps);
  }
  if (has_lstm_) {
    lstm_.forward(x, y, t1, t2);
    std::swap(x, y);
  }
  report_progress("encode", (steps - 1) / steps);
  last_.forward_act(Act::Elu, x, y, t3);
  report_progress("encode", 1.0);
  // Channels-last inside; latents leave channels-first [dimension, frames].
  const int64_t F = y.dim(0), D = y.dim(1);
  Tensor out({D, F});
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) out[d * F + f] = y[f * D + d];
  return out;
}

// ---------------------------------------------------------------- decoder

SeanetDecoder::SeanetDecoder(const WeightMap& w, const std::string& prefix, const SeanetConfig& c) : cfg_(c) {
  const bool reflect = c.pad_mode == "reflect";
  int mult = 1 << c.ratios.size();
  int idx = 0;
  auto name = [&](int i) { return prefix + "model." + std::to_string(i); };
  first_ =
      SConv1d(w, name(idx++) + ".conv.conv", c.dimension, mult * c.n_filters, c.kernel_size, 1, 1, c.causal, reflect);
  if (c.lstm_layers > 0) {
    lstm_ = SLstm(w, name(idx++), mult * c.n_filters, c.lstm_layers);
    has_lstm_ = true;
  }
  for (int r : c.ratios) {
    Stage st;
    idx++;  // ELU
    st.up = SConvTranspose1d(w, name(idx++) + ".convtr.convtr", mult * c.n_filters, mult * c.n_filters / 2, r * 2, r,
                             c.causal);
    int dil = 1;
    for (int j = 0; j < c.n_residual_layers; ++j, dil *= c.dilation_base)
      st.res.emplace_back(w, name(idx++), mult * c.n_filters / 2, c, dil);
    stages_.push_back(std::move(st));
    mult /= 2;
  }
  idx++;  // ELU
  last_ = SConv1d(w, name(idx++) + ".conv.conv", c.n_filters, c.channels, c.last_kernel_size, 1, 1, c.causal, reflect);
}

Tensor SeanetDecoder::forward(const float* latents, int64_t F) const {
  const int64_t D = cfg_.dimension;
  Tensor& x = scratch_tensor(this, 0);
  x.resize({F, D});
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) x[f * D + d] = latents[d * F + f];
  Tensor &y = scratch_tensor(this, 1), &t1 = scratch_tensor(this, 2), &t2 = scratch_tensor(this, 3),
         &t3 = scratch_tensor(this, 4);
  first_.forward(x, y, t3);
  std::swap(x, y);
  if (has_lstm_) {
    lstm_.forward(x, y, t1, t2);
    std::swap(x, y);
  }
  for (const auto& st : stages_) {
    apply_act(Act::Elu, x.data(), x.numel());
    st.up.forward(x, y, t3);
    std::swap(x, y);
    for (const auto& rb : st.res) {
      rb.forward(x, y, t1, t2, t3);
      std::swap(x, y);
    }
  }
  last_.forward_act(Act::Elu, x, y, t3);
  return y;
}

}  // namespace wavtok
