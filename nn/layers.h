// oneDNN-backed layers. Batch size is always 1; activations are plain row-major float buffers:
// channels-first [C, T] ("ncw") or channels-last [T, C] ("nwc"), chosen per layer.
// Every layer creates its primitives once per input length and reuses them; forward() is const and
// safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/dnnl_util.h"
#include "core/tensor.h"
#include "core/util.h"

namespace wavtok {

namespace quant {
struct LogQParams;
}

enum class Act { None, Elu, Gelu, Silu };

void apply_act(Act act, float* x, int64_t n);  // in place
// y = act(x), bit for bit what copying x and apply_act on the copy give (Act::None: a plain copy).
void apply_act_copy(Act act, const float* x, float* y, int64_t n);

// float32 -> bfloat16 (round to nearest even) into a per-thread buffer; returns it.
const uint16_t* to_bf16_scratch(const float* x, int64_t n, int slot);

// Post-training int8 quantization of one Conv1d/Linear (docs/PTQ.md). The input x is mapped per input channel
// c to u = (x - in_shift[c]) / in_scale[c] (SmoothQuant-b / RepQ-ViT reparameterization, identity when the
// vectors are empty), then to u8 codes q = clamp(rint(u / act_scale) + act_zero, 0, 255); the layer's weight
// must already be the transformed W' = W diag(in_scale) with bias b' = b + W in_shift. Weights are s8 with one
// scale per output channel, q_w = clamp(rint(W' / weight_scale[o]), -127, 127); oneDNN accumulates u8 x s8
// in int32 and dequantizes with per-channel output scales into float32 (post-ops: sum, activation).
//
// Per-token (dynamic) activations, `dynamic = true` (Conv1d only, channels-last, groups == 1; docs/PTQ.md
// "Per-token activations"): no static act_scale / act_zero / in_shift / in_scale (they must keep their defaults
// 1, 0, empty, empty). Over the already padded input x, output step t reads the im2col row r_t, the Cin*K values
// x[c, t*stride + k*dilation] (torch's unfold order is c major, k minor; the engine gathers k major, c minor,
// which changes neither the range nor the exact integer sums below). Every float below is float32:
//   lo_t = min(min(r_t), 0),  hi_t = max(max(r_t), 0),  s_t = max((hi_t - lo_t) / 255, 1e-8),  inv_t = 1 / s_t,
//   z_t  = clamp(rint(-lo_t * inv_t), 0, 255),
//   q    = clamp(rint(v * inv_t), -z_t, 255 - z_t) + z_t       (u8 code of each value v of r_t)
// with rint half-to-even (quantize_act's rounding). With the s8 weight codes w[o, c, k] (int8_weight_codes,
// weight_scale[o] per output channel) and S_o = sum of w[o, ., .], the integer sum is exact in int32
//   acc[t, o] = sum q * w,   y[o, t] = post((s_t * weight_scale[o]) * float(acc[t, o] - z_t * S_o) + b[o] [+ y])
// (post, `accumulate` and the order of the additions as in the float Conv1d: bias, then the old y, then the
// activation). Cin*K is at most kMaxTokenCols, so that |acc| and |z_t S_o| stay below 2^31.
//
// Per-step, per-group activation ranges, `dynamic = true` with `act_group = N` > 0 (Cin % N == 0; docs/PTQ.md
// "Activation ranges per step and channel group"; python/qat.py --act-mode frameN): each input step f and group g
// of N adjacent channels [g N, g N + N) takes its own range, lo, hi, s, inv and z as above over those N values
// (s_fg, z_fg), and their u8 codes q. With i = the exact int32 sum over the group of q[f, c] * w[o, c, k] and
// S_ogk = the sum of w[o, c, k] over the group, output t (f = t*stride + k*dilation) is, in float32,
//   a = 0;  for k, then for g:  a = fma(float(i), s_fg, a);  a = fma(-(s_fg * z_fg), float(S_ogk), a)
//   y[o, t] = post(weight_scale[o] * a + b[o] [+ y])      (a product, then sums: no fused multiply-add there)
// so the integer sums span N channels and the float work is 1/N of the multiply-adds.
struct Int8Params {
  float act_scale = 1.0f;
  int32_t act_zero = 0;
  std::vector<float> in_shift, in_scale;  // [Cin] or empty
  std::vector<float> weight_scale;        // [Cout]
  bool dynamic = false;                   // per-token activation ranges (see above)
  int act_group = 0;                      // with dynamic: 0 = a range per im2col row, N = per step and N channels
};
constexpr int64_t kMaxTokenCols = 32768;

struct Int8State;         // quantized weights and per-channel factors (nn/layer_support.h)
struct ConvGroupWeights;  // a per-group int8 Conv1d's packed codes (nn/conv_token.cc)

// The s8 weight codes an int8 layer uses: int8_weight_codes (core/util.h).

// What one output step of an observed layer reads: `kernel` input steps `dilation` apart, output steps `stride`
// apart (a Conv1d's geometry; 1, 1, 1 for every other layer).
struct ObservedGeometry {
  int kernel = 1, stride = 1, dilation = 1;
};
// Calibration hook: while set on a thread, every named Conv1d/Linear forward on that thread reports its
// float input (rows x cols, channels-last when `channels_last`, else [cols, rows] channels-first).
using ActObserver = std::function<void(const std::string& layer, const float* x, int64_t rows, int cols,
                                       bool channels_last, const ObservedGeometry& geometry)>;
void set_act_observer(const ActObserver* obs);  // nullptr turns it off
const ActObserver* act_observer();

// Conv1d over an already padded input (no implicit padding). Weight [Cout, Cin/groups, K].
class Conv1d {
 public:
  Conv1d() = default;
  Conv1d(const Tensor& weight, const Tensor& bias, int stride, int dilation, int groups, bool channels_last,
         Act post = Act::None);
  int64_t out_len(int64_t tin) const { return (tin - dilation_ * (kernel_ - 1) - 1) / stride_ + 1; }
  // y = post(conv(x) [+ y if accumulate]); x has tin samples per channel.
  void forward(const float* x, int64_t tin, float* y, bool accumulate = false) const;
  int in_channels() const { return cin_; }
  int out_channels() const { return cout_; }
  int kernel() const { return kernel_; }
  int stride() const { return stride_; }
  int dilation() const { return dilation_; }
  int64_t macs_per_output() const { return int64_t(cin_ / groups_) * kernel_ * cout_; }
  // Layers whose error would change tokens (the encoder) stay float32 in bf16 mode.
  void allow_bf16(bool on) { bf16_ok_ = on; }
  // bf16 whatever the process precision (a model file that asks for it: the encoder convs of a recipe with
  // `encoder_convs: bf16`, docs/PTQ.md), on CPUs with native bf16; float32 elsewhere. Only where bf16 pays.
  void force_bf16(bool on) { bf16_forced_ = on; }
  // Dense convs with >= 16 input channels; the depthwise and few-channel ones are memory bound and stay float32.
  bool bf16_pays() const { return bf16_pays(cin_, groups_); }
  static bool bf16_pays(int cin, int groups) { return groups == 1 && cin >= 16; }
  // Name reported to the activation observer (the weight prefix, e.g. "backbone.embed").
  void set_name(std::string name) { name_ = std::move(name); }
  const std::string& name() const { return name_; }
  const Tensor& weight() const { return w_; }
  const Tensor& bias() const { return b_; }
  // Switches to int8; the weight/bias given at construction must be the transformed ones. Grouped convs too (the
  // ConvNeXt depthwise conv: in_scale per input channel folds exactly into its own output channel's weights, so
  // per-channel input ranges cost nothing there). p.dynamic (per-token activations, see Int8Params) needs a dense
  // (groups == 1) channels-last layer; throws otherwise.
  void set_int8(Int8Params p);
  bool is_int8() const { return q_ != nullptr; }
  bool is_token_int8() const { return tok_ != nullptr; }
  bool is_group_int8() const { return grp_ != nullptr; }  // per-step, per-group ranges (Int8Params::act_group)
  int act_group() const;                                  // N of a per-group layer, else 0
  // Primitives held (one per piece length and accumulate flag; see forward()).
  size_t cached_shapes() const { return cache_.size() + tcache_.size(); }
  // Low-rank float adapter (RILQ on a convolution, docs/PTQ.md "Low-rank adapters"): with a [r, Cin, K] and
  // b [Cout, r], y = post(conv(x) + b' + B (A * x) [+ y]) where A * x is the convolution of x with a (this layer's
  // stride and dilation, no bias) and B a 1x1 mix, both float32 oneDNN convolutions run on the layer's raw float
  // input (before any int8 input transform), piece by piece with the main one (see forward()), the sum before the
  // fused activation. groups == 1 only; 1 <= r <= kMaxAdapterRank, finite values; throws otherwise. y must not
  // alias x. Float, int8 and packed low-bit (s8-coded) layers, either layout.
  static constexpr int kMaxAdapterRank = 64;
  void set_lowrank(const Tensor& a, const Tensor& b);
  bool has_lowrank() const { return lr_ != nullptr; }
  int lowrank_rank() const;
  // Lets Precision::F64 run this conv with float64 accumulation (the encoders' convs; channels-last float convs
  // with groups == 1: others ignore it, as int8 ones do).
  void allow_f64(bool on);

 private:
  struct F64Weights {  // [K][Cin][Cout] in float64, made on the first F64 call
    std::once_flag once;
    std::vector<double> w;
  };
  void forward_f64(const float* x, int64_t tin, float* y, bool accumulate) const;
  std::shared_ptr<F64Weights> w64_;
  struct Entry {
    dnnl::convolution_forward prim;
    dnnl::memory weights, bias;
    dnnl::memory::desc src_md, dst_md;
    bool bf16 = false;  // src and weights in bfloat16, dst float32
  };
  Entry make(int64_t tin, bool accumulate) const;
  Entry make_int8(int64_t tin, bool accumulate) const;
  void run(const float* x, int64_t tin, float* y, bool accumulate) const;       // one primitive call, exact shape
  void run_main(const float* x, int64_t tin, float* y, bool accumulate) const;  // run() without the adapter
  bool cheap_shapes() const;  // 1x1 kernel: its primitives are cheap to create for every length
  // Per-token int8 (nn/conv_token.cc): s8 codes gathered [Cout, K*Cin] (k major), their row sums; one u8 x s8 ->
  // s32 matmul [L, K*Cin] x [K*Cin, Cout] per output length L.
  struct TokenWeights {
    std::vector<int8_t> w;     // [Cout][K][Cin]
    std::vector<int32_t> sum;  // S_o
    std::vector<float> scale;  // weight_scale
  };
  struct TokenEntry {
    dnnl::matmul prim;
    dnnl::memory weights;
    dnnl::memory::desc src_md, dst_md;
  };
  void check_dynamic_int8(const Int8Params& p, const std::string& who) const;
  void set_token_int8(const Int8State& q);
  TokenEntry make_token(int64_t tout) const;
  void run_token(const float* x, int64_t tin, float* y, bool accumulate) const;
  std::shared_ptr<const TokenWeights> tok_;
  ShapeCache<TokenEntry> tcache_;
  // Per-group int8 (nn/conv_token.cc, ConvGroupWeights there).
  void set_group_int8(const Int8State& q);
  void run_group(const float* x, int64_t tin, float* y, bool accumulate) const;
  std::shared_ptr<const ConvGroupWeights> grp_;
  struct LowRank;
  std::string name_;
  std::shared_ptr<const Int8State> q_;
  std::shared_ptr<const LowRank> lr_;
  Tensor w_, b_;
  int cin_ = 0, cout_ = 0, kernel_ = 0, stride_ = 1, dilation_ = 1, groups_ = 1;
  bool channels_last_ = false;
  bool bf16_ok_ = true;
  bool bf16_forced_ = false;
  Act post_ = Act::None;
  ShapeCache<Entry> cache_;
  WeightCache wcache_;  // the weights in each layout the cached primitives use
};

// ConvTranspose1d without output trimming (callers unpad). PyTorch weight [Cin, Cout, K].
//
// int8 mode (set_int8) is SYMMETRIC on the input: s8 codes q = clamp(rint(x / act_scale), -127, 127) (act_zero
// must be 0, no in_shift/in_scale), s8 weights q_w = clamp(rint(W[o] / weight_scale[o]), -127, 127) per output
// channel, oneDNN int8 deconvolution (int32 accumulation) dequantized by act_scale * weight_scale[o] into float32,
// bias added in float (given to oneDNN in accumulator units, b / (act_scale weight_scale[o])). With zero point 0
// nothing is folded into the bias, so the edge outputs (which sum over fewer taps) are as exact as the interior.
class ConvTranspose1d {
 public:
  ConvTranspose1d() = default;
  ConvTranspose1d(const Tensor& weight, const Tensor& bias, int stride, bool channels_last = false);
  int64_t out_len(int64_t tin) const { return (tin - 1) * stride_ + kernel_; }
  void forward(const float* x, int64_t tin, float* y) const;  // [Cin, T] -> [Cout, Tout] (or [T, C] layouts)
  int in_channels() const { return cin_; }
  int out_channels() const { return cout_; }
  int kernel() const { return kernel_; }
  int stride() const { return stride_; }
  // Name reported to the activation observer (the weight prefix).
  void set_name(std::string name) { name_ = std::move(name); }
  const std::string& name() const { return name_; }
  // The weight in oneDNN order [Cout, Cin, K] (the order an int8 transposed conv is stored in, models/quantized.h).
  const Tensor& weight_oik() const { return w_; }
  const Tensor& bias() const { return b_; }
  // Switches to int8 (see above): act_zero == 0, in_shift/in_scale empty, weight_scale [Cout].
  void set_int8(Int8Params p);
  bool is_int8() const { return q_ != nullptr; }

 private:
  struct Entry {
    dnnl::deconvolution_forward prim;
    dnnl::memory weights, bias;
    dnnl::memory::desc src_md, dst_md;
  };
  Entry make(int64_t tin) const;
  std::string name_;
  std::shared_ptr<const Int8State> q_;
  Tensor w_, b_;  // w_ in oneDNN order [Cout, Cin, K]
  int cin_ = 0, cout_ = 0, kernel_ = 0, stride_ = 1;
  bool channels_last_ = false;
  ShapeCache<Entry> cache_;
  WeightCache wcache_;  // the weights in each layout the cached primitives use
};

// y[T, Cout] = post(x[T, Cin] W^T + b) [+ y before post if accumulate].
class Linear {
 public:
  Linear() = default;
  Linear(const Tensor& weight, const Tensor& bias, Act post = Act::None);
  void forward(const float* x, int64_t rows, float* y, bool accumulate = false) const;
  int in_features() const { return cin_; }
  int out_features() const { return cout_; }
  void set_name(std::string name) { name_ = std::move(name); }
  const std::string& name() const { return name_; }
  const Tensor& weight() const { return w_; }
  const Tensor& bias() const { return b_; }
  void set_int8(Int8Params p);  // see Int8Params
  bool is_int8() const { return q_ != nullptr; }
  // Low-rank float adapter (RILQ, docs/PTQ.md): y = post(x W^T + b + (x A^T) B^T [+ y]) with a [r, Cin] and
  // b [Cout, r], run as two small float GEMMs beside the (int8) main one, on the layer's raw float input (before
  // any int8 input transform). 1 <= r <= kMaxAdapterRank, finite values; throws otherwise. y must not alias x.
  static constexpr int kMaxAdapterRank = 64;
  void set_lowrank(const Tensor& a, const Tensor& b);
  bool has_lowrank() const { return lr_ != nullptr; }
  int lowrank_rank() const;
  // The int8 state (weight codes, input quantizer) or nullptr; what a producer of this layer's codes reads.
  const Int8State* int8_state() const { return q_.get(); }

  // int8 kept between layers (docs/PTQ.md "int8 end to end"). Both layers int8: this layer's output is written
  // straight as `next`'s u8 input codes, q = clamp(rint(post(y) * mul[c] + add[c]), 0, 255), with
  // mul[c] = 1 / (smooth_c act_scale) and add[c] = zero - shift_c mul[c] of next's input quantizer; the
  // requantization runs in the primitive's post-ops (after the output scales and the activation) and oneDNN
  // rounds to nearest even and saturates into the u8 dst. `next` must outlive this layer's use of the chain.
  void chain_to(const Linear& next);
  bool chained() const { return rq_ != nullptr; }
  // y = post(dequant(q W^T) + b) [+ y] on codes already made by this layer's input quantizer (or a producer).
  void forward_codes(const uint8_t* q, int64_t rows, float* y, bool accumulate = false) const;
  // codes_out = next's codes of post(x W^T + b), from float input x or from this layer's input codes q.
  void forward_to_codes(const float* x, int64_t rows, uint8_t* codes_out) const;
  void forward_codes_to_codes(const uint8_t* q, int64_t rows, uint8_t* codes_out) const;

 private:
  struct LowRank;
  struct Entry {
    dnnl::inner_product_forward prim;
    dnnl::memory weights, bias;
    dnnl::memory::desc src_md, dst_md;
    bool bf16 = false;
  };
  struct Requant {
    bool per_channel = false;        // binary post-ops (a per-channel transform) or one eltwise_linear
    float mul0 = 1.0f, add0 = 0.0f;  // per tensor
    dnnl::memory mul, add;           // [1, Cout] f32, per channel
  };
  Entry make(int64_t rows, bool accumulate) const;
  Entry make_int8(int64_t rows, bool accumulate, bool codes_out = false) const;
  void run_int8(const uint8_t* q, int64_t rows, void* y, bool accumulate, bool codes_out) const;
  void forward_main(const float* x, int64_t rows, float* y, bool accumulate) const;
  std::string name_;
  std::shared_ptr<const Int8State> q_;
  std::shared_ptr<const LowRank> lr_;
  std::shared_ptr<const Requant> rq_;
  Tensor w_, b_;
  int cin_ = 0, cout_ = 0;
  Act post_ = Act::None;
  ShapeCache<Entry> cache_;
  WeightCache wcache_;  // the weights in each layout the cached primitives use
};

// LayerNorm over the last dimension of [T, C]; scale/shift may be given per call (AdaLayerNorm).
class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(int channels, float eps) : c_(channels), eps_(eps) {}
  void forward(const float* x, int64_t rows, float* y, const float* scale, const float* shift) const;
  int channels() const { return c_; }
  float eps() const { return eps_; }

 private:
  struct Entry {
    dnnl::layer_normalization_forward prim;
    dnnl::memory::desc md, ss_md;
  };
  Entry make(int64_t rows) const;
  int c_ = 0;
  float eps_ = 1e-5f;
  ShapeCache<Entry> cache_;
};

// GroupNorm on channels-last [T, C] (oneDNN 2.6 has no group normalization primitive).
void group_norm_tc(const float* x, int64_t T, int C, int groups, float eps, const float* gamma, const float* beta,
                   float* y, bool silu);
// y[t, c] = x[t, c] * gamma[c] + beta[c] (then SiLU when `silu`); y may alias x. The pointwise stand-in for
// GroupNorm in streamable backbones (VocosConfig::pos_net_norm "affine").
void channel_affine_tc(const float* x, int64_t T, int C, const float* gamma, const float* beta, float* y, bool silu);

// Whether models built from now on keep int8 activations between consecutive int8 layers (default on; off only to
// measure the unfused path side by side, `wavtok ptq-speed --unfused`; WAVTOK_INT8_CHAIN=0 in the environment makes
// off the starting value). Read when a model is constructed.
void set_int8_chaining(bool on);
bool int8_chaining();

// LayerNorm over the last dimension of [rows, C] (per-channel scale/shift) written straight as `next`'s u8 input
// codes (next must be an int8 Linear with C inputs): the normalised value v goes through next's quantizer,
// clamp(rint((v - in_shift[c]) / (in_scale[c] act_scale)) + act_zero, 0, 255), as Linear::forward would quantize
// a float LayerNorm output, with no float activation written in between (docs/PTQ.md "int8 end to end").
// Statistics in float (two passes, mean then variance), like oneDNN's layer normalization.
void layer_norm_to_codes(const float* x, int64_t rows, int C, float eps, const float* scale, const float* shift,
                         const Linear& next, uint8_t* codes);

// The ConvNeXt block's front in one pass (docs/PTQ.md "int8 end to end"): for output rows t in [0, rows), the
// depthwise conv y[t, c] = bias[c] + sum_k w_kc[k * C + c] x[t + first + k - K/2, c] over input rows x[0, n) (rows
// outside read as zeros: the conv's zero padding), then the LayerNorm of y written as `next`'s u8 codes as
// layer_norm_to_codes does. w_kc is the depthwise weight tap-major [K, C] (odd K). No float activation is written.
void dwconv_layer_norm_to_codes(const float* x, int64_t n, int64_t first, int64_t rows, int C, int K, const float* w_kc,
                                const float* bias, float eps, const float* scale, const float* shift,
                                const Linear& next, uint8_t* codes);

// Int8 LSTM (docs/PTQ.md): every layer input v (the layer-0 input divided by `in_divisor`, and the hidden states,
// which lie in (-1, 1)) is u8 = clamp(rint(v * data_scale + data_shift), 0, 255), one mapping for all of them as
// oneDNN's int8 RNN requires; weights are s8 codes times a scale per gate row: either one scale per row shared by
// every layer's W_ih and W_hh (weight_scale [4H], as oneDNN's RNN weight scales span layers), or one per row of
// each matrix (weight_scale [2 * layers * 4H]: W_ih_l0, W_hh_l0, W_ih_l1, ...; the own kernels only, nn/lstm_int8.h:
// a shared row scale is set by the largest of 2L rows, which costs the others resolution, e.g. 1.3 points of the v6
// model's tokens). The layer-0 W_ih given to the Lstm already carries the in_divisor factor (W_ih * in_divisor), so
// the layer computes the float LSTM's function. Cell states stay f32.
struct LstmInt8Params {
  float data_scale = 127.0f, data_shift = 128.0f;
  float in_divisor = 1.0f;
  std::vector<float> weight_scale;  // [4 * hidden] (shared) or [2 * layers * 4 * hidden] (per matrix)
  bool per_matrix(int hidden) const { return weight_scale.size() != size_t(4) * size_t(hidden); }
};

class LstmInt8Impl;  // nn/lstm_int8.h

// Multi-layer unidirectional LSTM, PyTorch gate order (i, f, g, o), same as oneDNN's.
// Input and output are [T, C] (channels-last). State (h, c) for each layer is carried in `state`
// when given, so a stream can be processed chunk by chunk.
class Lstm {
 public:
  struct State {
    Tensor h, c;            // [layers, hidden]
    Tensor h_next, c_next;  // the step's outputs, swapped with h, c: streaming chunks then allocate nothing
  };
  Lstm() = default;
  // weights per layer: weight_ih [4H, I], weight_hh [4H, H], bias_ih [4H], bias_hh [4H]
  Lstm(const std::vector<Tensor>& w_ih, const std::vector<Tensor>& w_hh, const std::vector<Tensor>& b_ih,
       const std::vector<Tensor>& b_hh);
  void forward(const float* x, int64_t T, float* y, State* state = nullptr) const;
  State initial_state() const;
  int hidden() const { return hidden_; }
  int layers() const { return layers_; }
  // Runs the layer in int8 from now on (throws on a weight_scale of the wrong size or bad values).
  void set_int8(LstmInt8Params p);
  const LstmInt8Params* int8() const { return q_ ? &*q_ : nullptr; }
  // Calibration: the name under which the activation observer sees the layer-0 input ([T, C]).
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  struct Entry {
    dnnl::lstm_forward prim;
    dnnl::memory wl, wi, bias;
    dnnl::memory::desc src_md, dst_md, iter_md, iter_c_md, src_iter_md;
  };
  Entry make(int64_t T) const;
  Tensor wl_, wi_, bias_;  // ldigo, ldigo, ldgo
  int layers_ = 0, input_ = 0, hidden_ = 0;
  std::optional<LstmInt8Params> q_;
  std::shared_ptr<const LstmInt8Impl> i8_;  // the int8 path's own kernels (nn/lstm_int8.h), when q_ allows them
  std::string name_;
  ShapeCache<Entry> cache_;
  WeightCache wl_cache_, wi_cache_;
};

// Single-head self-attention core on [T, C]: out = softmax(q k^T * scale) v.
class AttentionCore {
 public:
  void forward(const float* q, const float* k, const float* v, int64_t T, int C, float* out, Tensor& scratch) const;
  // Post-softmax quantization (docs/PTQ.md): the probabilities are fake-quantized (quantize, dequantize in
  // float) by `p` (log-sqrt2, AdaLog or TanQ, quant/log_quant.h) before the P·V product; nullptr = float.
  void set_prob_quant(std::shared_ptr<const quant::LogQParams> p) { pq_ = std::move(p); }
  const quant::LogQParams* prob_quant() const { return pq_.get(); }
  // int8 attention (docs/PTQ.md "int8 end to end"): Q and K are quantized symmetrically per row at run time
  // (s = max|x| / 127 of the row, codes clamp(rint(x / s), -127, 127)), V per channel with the calibrated scales
  // `v_scale` [C] (static, so a row's output depends on no other row's values: a local model still streams like
  // one shot) or, when empty, with s = max|x| / 127 of the channel in this call; Q K^T runs as an s8 x s8 oneDNN
  // matmul (int32 accumulation) scaled by s_q[i] s_k[j] / sqrt(C) into float scores; the softmax is taken as
  // E = exp(S - rowmax) (in [0, 1], 1 at the maximum) quantized to u8 codes e = rint(255 E); E V runs as a u8 x s8
  // matmul scaled by s_v[c], and each output row is divided by its sum of codes (the normalisation, exact for the
  // codes used). The scales are applied in the passes over the scores and the output, not as oneDNN output scales
  // (with run-time scales oneDNN 2.6 leaves brgemm for a slow gemm). Ignored while a post-softmax quantizer is set.
  void set_int8(bool on, std::vector<float> v_scale = {});
  bool is_int8() const { return int8_; }
  // Calibration: the name under which the activation observer sees V ([T, C] rows; float path only).
  void set_v_name(std::string name) { v_name_ = std::move(name); }
  // Name under which the activation observer sees the probabilities ([T, T] rows, channels-last).
  void set_name(std::string name) { name_ = std::move(name); }
  // Query t attends keys t - left .. t + right only (a band mask before the softmax); left < 0: all keys.
  void set_window(int left, int right) { win_left_ = left, win_right_ = right; }

 private:
  struct Entry {
    dnnl::matmul qk, pv;
    dnnl::softmax_forward softmax;
    dnnl::memory::desc q_md, kt_md, s_md, v_md, o_md;
  };
  Entry make(int64_t T, int C) const;
  Entry make_int8(int64_t T, int C) const;
  void forward_int8(const Entry& e, const float* q, const float* k, const float* v, int64_t T, int C, float* out) const;
  ShapeCache<Entry> cache_;
  std::shared_ptr<const quant::LogQParams> pq_;
  bool int8_ = false;
  std::vector<float> v_scale_;
  std::string v_name_;
  std::string name_;
  int win_left_ = -1, win_right_ = -1;
};

}  // namespace wavtok
