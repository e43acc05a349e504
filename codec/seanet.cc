#include "codec/seanet.h"

#include <cmath>

#include "codec/error.h"
#include "codec/progress.h"
#include "codec/ptq.h"

namespace wavtok {

void pad1d(const float* x, int C, int64_t T, int64_t left, int64_t right, bool reflect, Tensor& out) {
  const int64_t To = T + left + right;
  out.resize({To, C});
  // Reflect padding needs more samples than the pad; EnCodec zero-extends short inputs first.
  const int64_t max_pad = std::max(left, right);
  const int64_t extra = (reflect && T <= max_pad) ? max_pad - T + 1 : 0;
  const int64_t Te = T + extra;  // length of the (virtually) zero-extended signal
  float* dst = out.data();
  auto put_row = [&](int64_t to, int64_t from) {  // from: index into the extended signal
    if (from < T) std::copy(x + from * C, x + (from + 1) * C, dst + to * C);
    else std::fill(dst + to * C, dst + (to + 1) * C, 0.0f);
  };
  for (int64_t i = 0; i < left; ++i) {
    if (reflect) put_row(i, left - i);
    else std::fill(dst + i * C, dst + (i + 1) * C, 0.0f);
  }
  std::copy(x, x + T * C, dst + left * C);
  for (int64_t i = 0; i < right; ++i) {
    const int64_t p = T + i;  // position in the extended signal; reflect around Te - 1
    if (reflect) put_row(left + T + i, p < Te ? p : 2 * (Te - 1) - p);
    else std::fill(dst + (left + T + i) * C, dst + (left + T + i + 1) * C, 0.0f);
  }
}

// ---------------------------------------------------------------- SConv1d

SConv1d::SConv1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride, int dilation,
                 bool causal, bool reflect, Act post)
    : conv_(w.get(name + ".weight", {cout, cin, kernel}), w.get(name + ".bias", {cout}), stride, dilation, 1, true, post),
      causal_(causal), reflect_(reflect) {
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

int64_t SConv1d::out_len(int64_t tin) const {
  return conv_.out_len(tin + padding_total() + extra_padding(tin));
}

void SConv1d::forward(const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate) const {
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
  if (left || right) {
    pad1d(x.data(), conv_.in_channels(), T, left, right, reflect_, scratch);
    src = scratch.data();
    Tp = T + left + right;
  }
  const int64_t To = conv_.out_len(Tp);
  if (!accumulate) y.resize({To, conv_.out_channels()});
  else if (y.dim(1) != conv_.out_channels() || y.dim(0) != To) throw Error("SConv1d: accumulate shape mismatch");
  conv_.forward(src, Tp, y.data(), accumulate);
}

// ---------------------------------------------------------------- SConvTranspose1d

SConvTranspose1d::SConvTranspose1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride,
                                   bool causal)
    : causal_(causal) {
  // An int8 transposed conv stores its weight output-major [Cout, Cin, K] like every int8 layer (codec/ptq.h).
  if (w.has(name + ".act_quant")) {
    const Tensor& wo = w.get(name + ".weight", {cout, cin, kernel});
    Tensor wi({cin, cout, kernel});
    for (int o = 0; o < cout; ++o)
      for (int i = 0; i < cin; ++i)
        for (int k = 0; k < kernel; ++k) wi[(int64_t(i) * cout + o) * kernel + k] = wo[(int64_t(o) * cin + i) * kernel + k];
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

SeanetResBlock::SeanetResBlock(const WeightMap& w, const std::string& name, int dim, const SeanetConfig& c, int dilation)
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
  t1 = x;
  apply_act(Act::Elu, t1.data(), t1.numel());
  conv1_.forward(t1, t2, t3);  // ELU fused as post-op
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
    st.down = SConv1d(w, name(idx++) + ".conv.conv", mult * c.n_filters, mult * c.n_filters * 2, *it * 2, *it, 1, c.causal,
                      reflect);
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
  // bf16 here would move latents enough to change tokens; the encoder always computes in float32.
  first_.keep_f32();
  last_.keep_f32();
  for (auto& st : stages_) {
    st.down.keep_f32();
    for (auto& rb : st.res) rb.keep_f32();
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
    apply_act(Act::Elu, x.data(), x.numel());
    st.down.forward(x, y, t3);
    std::swap(x, y);
    report_progress("encode", (i + 1) / steps);
  }
  if (has_lstm_) {
    lstm_.forward(x, y, t1, t2);
    std::swap(x, y);
  }
  report_progress("encode", (steps - 1) / steps);
  apply_act(Act::Elu, x.data(), x.numel());
  last_.forward(x, y, t3);
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
  first_ = SConv1d(w, name(idx++) + ".conv.conv", c.dimension, mult * c.n_filters, c.kernel_size, 1, 1, c.causal, reflect);
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
  apply_act(Act::Elu, x.data(), x.numel());
  last_.forward(x, y, t3);
  return y;
}

// ---------------------------------------------------------------- streaming

namespace {

void append_rows(std::vector<float>& buf, const float* x, int64_t n, int64_t C) { buf.insert(buf.end(), x, x + n * C); }

void drop_rows(std::vector<float>& buf, int64_t n, int64_t C) { buf.erase(buf.begin(), buf.begin() + n * C); }

}  // namespace

SConv1dStream::SConv1dStream(const SConv1d* conv) : conv_(conv) {}

void SConv1dStream::run(const float* x, int64_t n, bool last, Tensor& y) {
  const Conv1d& c = conv_->conv();
  const int64_t C = c.in_channels(), P = conv_->padding_total();
  const int64_t k = int64_t(c.dilation()) * (c.kernel() - 1) + 1, s = c.stride();
  // One-shot padding: left L, right R0 + extra (the extra depends on the stream's length, known at the end).
  const int64_t R0 = conv_->causal() ? 0 : P / 2, L = P - R0;
  append_rows(buf_, x, n, C);
  seen_ += n;
  if (!started_) {
    if (!conv_->reflect()) {
      buf_.insert(buf_.begin(), size_t(L * C), 0.0f);
      started_ = true;
    } else if (seen_ > L) {
      // Reflect: rows x[L], x[L-1], ..., x[1] before x[0].
      pad_.resize({L, C});
      for (int64_t i = 0; i < L; ++i)
        std::copy(buf_.begin() + (L - i) * C, buf_.begin() + (L - i + 1) * C, pad_.data() + i * C);
      buf_.insert(buf_.begin(), pad_.data(), pad_.data() + L * C);
      started_ = true;
    }
  }
  if (last) {
    const int64_t R = R0 + (seen_ > 0 ? conv_->extra_padding(seen_) : 0);
    if (conv_->reflect() && seen_ <= std::max(L, R)) {
      // Too short for reflect padding: the one-shot rule (zero extension) on everything received. Nothing was
      // consumed yet: a first window needs more than max(L, R) inputs.
      if (consumed_) throw Error("streaming: convolution state inconsistent at the end of a short stream");
      y.resize({0, c.out_channels()});
      if (seen_ > 0) {
        pad1d(buf_.data() + (started_ ? L * C : 0), int(C), seen_, L, R, true, pad_);
        y.resize({c.out_len(pad_.dim(0)), c.out_channels()});
        if (y.dim(0) > 0) c.forward(pad_.data(), pad_.dim(0), y.data());
      }
      reset();
      return;
    }
    // End of stream: the right padding of the one-shot path (reflect of the last inputs, or zeros).
    const int64_t rows = int64_t(buf_.size()) / C;
    if (conv_->reflect() && rows < R + 1) throw Error("streaming: convolution history too short");
    pad_.resize({R, C});
    for (int64_t i = 0; i < R; ++i) {
      if (conv_->reflect()) std::copy(buf_.begin() + (rows - 2 - i) * C, buf_.begin() + (rows - 1 - i) * C, pad_.data() + i * C);
      else std::fill(pad_.data() + i * C, pad_.data() + (i + 1) * C, 0.0f);
    }
    buf_.insert(buf_.end(), pad_.data(), pad_.data() + R * C);
  }
  const int64_t rows = int64_t(buf_.size()) / C, avail = rows - next_;
  const int64_t m = started_ && avail >= k ? (avail - k) / s + 1 : 0;
  y.resize({m, c.out_channels()});
  if (m > 0) {
    c.forward(buf_.data() + next_ * C, (m - 1) * s + k, y.data());
    next_ += m * s;
    consumed_ = true;
    // Keep the rows later windows read, and at least R0 + stride inputs for the end's reflect padding.
    const int64_t drop = std::min(next_, rows - (R0 + s));
    if (drop > 0) {
      drop_rows(buf_, drop, C);
      next_ -= drop;
    }
  }
  peak_ = std::max(peak_, size_t(pad_.numel()));
  if (last) reset();
}

void SConv1dStream::reset() {
  buf_.clear();
  seen_ = next_ = 0;
  started_ = consumed_ = false;
}

SConvTranspose1dStream::SConvTranspose1dStream(const SConvTranspose1d* conv) : conv_(conv) {
  if (!conv->causal()) throw Error("streaming: SConvTranspose1dStream needs a causal transposed convolution");
}

void SConvTranspose1dStream::run(const float* x, int64_t n, bool last, Tensor& y) {
  const ConvTranspose1d& c = conv_->conv();
  const int64_t Cin = c.in_channels(), Cout = c.out_channels(), s = c.stride(), k = c.kernel();
  const int64_t ctx = (k + s - 1) / s - 1;
  const int64_t h = int64_t(buf_.size()) / Cin;  // kept rows
  y.resize({n * s, Cout});
  if (n > 0) {
    append_rows(buf_, x, n, Cin);
    full_.resize({c.out_len(h + n), Cout});
    c.forward(buf_.data(), h + n, full_.data());
    // Rows of the new inputs: their outputs [h * s, (h + n) * s) have every contribution now.
    std::copy(full_.data() + h * s * Cout, full_.data() + (h + n) * s * Cout, y.data());
    const int64_t rows = h + n, keep = std::min(ctx, rows);
    drop_rows(buf_, rows - keep, Cin);
  }
  peak_ = std::max(peak_, size_t(full_.numel()));
  if (last) buf_.clear();  // the one-shot path trims the K - stride rows past the end
}

SeanetResStream::SeanetResStream(const SeanetResBlock* block) : b_(block), c1_(&block->conv1_), c2_(&block->conv2_) {
  if (!block->true_skip_ && block->shortcut_.conv().kernel() != 1)
    throw Error("streaming: residual shortcut with a kernel wider than 1 is not supported");
}

size_t SeanetResStream::capacity_bytes() const {
  return c1_.capacity_bytes() + c2_.capacity_bytes() + (pending_.capacity() + peak_) * sizeof(float);
}

void SeanetResStream::run(const Tensor& x, bool last, Tensor& y) {
  const int64_t n = x.dim(0), C = x.dim(1);
  append_rows(pending_, x.data(), n, C);
  t1_ = x;
  apply_act(Act::Elu, t1_.data(), t1_.numel());
  c1_.run(t1_.data(), n, last, t2_);  // ELU fused
  c2_.run(t2_.data(), t2_.dim(0), last, t3_);
  const int64_t m = t3_.dim(0);  // branch rows out; pair them with the oldest pending inputs
  y.resize({m, C});
  if (m > 0) {
    if (b_->true_skip_) std::copy(pending_.data(), pending_.data() + m * C, y.data());
    else b_->shortcut_.conv().forward(pending_.data(), m, y.data());
    for (int64_t i = 0; i < m * C; ++i) y[i] += t3_[i];
    drop_rows(pending_, m, C);
  }
  peak_ = std::max(peak_, size_t(t1_.numel() + t2_.numel() + t3_.numel()));
  if (last && !pending_.empty()) throw Error("streaming: residual branch did not catch up at the end");
}

SeanetEncoderStream::SeanetEncoderStream(const SeanetEncoder& enc)
    : enc_(&enc), first_(&enc.first_), last_(&enc.last_) {
  for (const auto& st : enc.stages_) {
    res_.emplace_back();
    for (const auto& rb : st.res) res_.back().emplace_back(&rb);
    down_.emplace_back(&st.down);
  }
  if (enc.has_lstm_) lstm_state_ = enc.lstm_.initial_state();
}

size_t SeanetEncoderStream::capacity_bytes() const {
  size_t b = first_.capacity_bytes() + last_.capacity_bytes() + peak_ * sizeof(float);
  for (const auto& st : res_)
    for (const auto& r : st) b += r.capacity_bytes();
  for (const auto& d : down_) b += d.capacity_bytes();
  return b;
}

void SeanetEncoderStream::run(const float* audio, int64_t n, bool last, Tensor& latents) {
  first_.run(audio, n, last, a_);
  for (size_t i = 0; i < down_.size(); ++i) {
    for (auto& r : res_[i]) {
      r.run(a_, last, b_);
      std::swap(a_, b_);
    }
    apply_act(Act::Elu, a_.data(), a_.numel());
    down_[i].run(a_.data(), a_.dim(0), last, b_);
    std::swap(a_, b_);
  }
  if (enc_->has_lstm_) {
    enc_->lstm_.forward_stream(a_, b_, lstm_state_);
    std::swap(a_, b_);
    if (last) lstm_state_ = enc_->lstm_.initial_state();
  }
  apply_act(Act::Elu, a_.data(), a_.numel());
  peak_ = std::max(peak_, size_t(a_.numel() + b_.numel()));
  last_.run(a_.data(), a_.dim(0), last, latents);
}

SeanetDecoderStream::SeanetDecoderStream(const SeanetDecoder& dec)
    : dec_(&dec), first_(&dec.first_), last_(&dec.last_) {
  if (!dec.causal()) throw Error("streaming: exact streaming needs a causal SEANet decoder");
  for (const auto& st : dec.stages_) {
    up_.emplace_back(&st.up);
    res_.emplace_back();
    for (const auto& rb : st.res) res_.back().emplace_back(&rb);
  }
  if (dec.has_lstm_) lstm_state_ = dec.lstm_.initial_state();
}

size_t SeanetDecoderStream::capacity_bytes() const {
  size_t b = first_.capacity_bytes() + last_.capacity_bytes() + peak_ * sizeof(float);
  for (const auto& st : res_)
    for (const auto& r : st) b += r.capacity_bytes();
  for (const auto& u : up_) b += u.capacity_bytes();
  return b;
}

void SeanetDecoderStream::run(const float* latents, int64_t n, bool last, Tensor& audio) {
  first_.run(latents, n, last, a_);
  if (dec_->has_lstm_) {
    dec_->lstm_.forward_stream(a_, b_, lstm_state_);
    std::swap(a_, b_);
    if (last) lstm_state_ = dec_->lstm_.initial_state();
  }
  for (size_t i = 0; i < up_.size(); ++i) {
    apply_act(Act::Elu, a_.data(), a_.numel());
    up_[i].run(a_.data(), a_.dim(0), last, b_);
    std::swap(a_, b_);
    for (auto& r : res_[i]) {
      r.run(a_, last, b_);
      std::swap(a_, b_);
    }
  }
  apply_act(Act::Elu, a_.data(), a_.numel());
  peak_ = std::max(peak_, size_t(a_.numel() + b_.numel()));
  last_.run(a_.data(), a_.dim(0), last, audio);
}

}  // namespace wavtok
