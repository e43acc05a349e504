// Post-training quantization: how int8 layers are stored in a model file, and how the model builds them.
//
// A quantized model's layers carry, beside NAME.weight / NAME.bias (already the transformed W' and b', see
// Int8Params in nn/layers.h), these float32 tensors:
//   NAME.act_quant    [2]     activation scale and zero point (u8 codes)
//   NAME.act_shift    [Cin]   optional per-input-channel shift   (SmoothQuant-b / RepQ-ViT)
//   NAME.act_smooth   [Cin]   optional per-input-channel divisor
//   NAME.weight_scale [Cout]  s8 weight scale per output channel
// NAME is the layer's weight prefix, e.g. "backbone.convnext.0.pwconv1". A transposed conv (a layer whose name
// ends in ".convtr", SEANet's "…convtr.convtr") quantizes its input symmetrically: act_quant = (scale, 0), s8
// codes in [-127, 127], no act_shift/act_smooth; its int8 NAME.weight is stored output-major [Cout, Cin, K]
// (the float one is PyTorch's [Cin, Cout, K]) so that weight_scale [Cout] pairs with dim 0 as for every int8
// layer. A layer without NAME.act_quant runs in
// float. Such a model must run its quantized layers in int8 (W' differs from W unless the shift/divisor are
// absent), so the .wtk writer stores it as format version 2 requiring kModelFeatureInt8, with NAME.weight as s8
// codes (io/model_file.h).
//
// A Conv1d with per-token activations (Int8Params::dynamic, docs/PTQ.md "Per-token activations"; recipe key
// `act_range: token`) carries NAME.act_dynamic [1] = 1 beside NAME.act_quant = [1, 0] (a placeholder: no static
// range) and NAME.weight_scale, no act_shift / act_smooth; kModelFeatureTokenAct (io/model_file.h), so that a reader
// predating it refuses the file instead of running the layer on the placeholder range. Only channels-last Conv1d
// layers (the SEANet convs) take it; a marker elsewhere, of another shape or value, is refused naming the file.
// NAME.act_group [1] = N beside it (Int8Params::act_group; python/qat.py --act-mode frameN) takes a range per input
// step and group of N channels instead of per im2col row; N must divide Cin; kModelFeatureGroupAct.
//
// An int8 LSTM NAME (e.g. "encoder.model.13.lstm", see LstmInt8Params in nn/layers.h) carries
//   NAME.act_quant    [2]     (1 / data_scale, data_shift): the u8 mapping of every layer input
//   NAME.act_smooth   [1]     the divisor of the layer-0 input (NAME.weight_ih_l0 is stored multiplied by it)
//   NAME.weight_scale [4H]    s8 scale per gate row, shared by every NAME.weight_ih_lK / NAME.weight_hh_lK
// and those weights go to the file as s8 codes like the other int8 layers' NAME.weight.
//
// Post-softmax quantization of an attention block NAME (e.g. "backbone.pos_net.2"): NAME.softmax_quant [9] =
// kind (0 log-sqrt2, 1 AdaLog, 2 TanQ), bits, scale, zero_code, k, r, mant_bits, tan_a, tan_m; the quantizer is
// rebuilt from these with quant/log_quant.h's make_* functions (a file marked kModelFeatureSoftmaxQuant).
//
// The codebook search a quantized model asks for: quantizer.vq_search [1] = 0 (f32) or 2 (int8, vq/rvq.h; recipe
// key `vq_search: int8`). The search is exact at every precision (the same codes), so this picks the speed only
// and needs no feature bit: a reader that ignores it searches in f32 and gets the same tokens.
//
// int8 attention of a block NAME (AttentionCore::set_int8 in nn/layers.h; recipe key `attention: int8`):
// NAME.attn_int8 [1] = 1 and NAME.attn_v_scale [C], the calibrated s8 scale of each V channel (Q and K scales are
// taken per row at run time); kModelFeatureInt8Attention. Calibration observes V as NAME.attn_v.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "io/weights.h"
#include "nn/layers.h"
#include "quant/log_quant.h"
#include "vq/rvq.h"

namespace wavtok {

// The int8 parameters stored for layer `name`, or nothing when it is not quantized. Throws naming the
// file on malformed tensors.
std::optional<Int8Params> stored_int8_params(const WeightMap& w, const std::string& name, int cin, int cout);

constexpr const char* kActDynamicSuffix = ".act_dynamic";
constexpr const char* kActGroupSuffix = ".act_group";
// Throws naming the file when a NAME.act_dynamic sits on a layer without act_quant or one that `is_conv` (the
// model's channels-last Conv1d layers) does not know, or a NAME.act_group without NAME.act_dynamic: it would
// otherwise be silently ignored.
void check_act_dynamic_used(const WeightMap& w, const std::function<bool(const std::string&)>& is_conv);

// Names the layer (for calibration) and switches it to int8 when the file quantizes it. A Linear also takes its
// low-rank adapter NAME.lora_a [r, Cin] / NAME.lora_b [Cout, r] (RILQ; float32, a file marked
// kModelFeatureLowRank), run beside the (int8) layer: y = W x + b + B (A x).
void setup_layer(Linear& layer, const WeightMap& w, const std::string& name);
// Throws naming the file when an adapter tensor sits on a layer that `is_linear` (the layers the model adapts: its
// decoder Linears and, for WavTokenizer, backbone.embed and the pos_net convs) does not know (a typo, an encoder
// conv): otherwise it would be silently ignored. Returns the number of adapted layers.
int64_t check_adapters_used(const WeightMap& w, const std::function<bool(const std::string&)>& is_linear);
// A Conv1d takes its adapter NAME.lora_a [r, Cin, K] / NAME.lora_b [Cout, r] the same way (Conv1d::set_lowrank:
// y = conv(x) + b + B (A * x), A * x a convolution with the layer's stride and dilation).
void setup_layer(Conv1d& layer, const WeightMap& w, const std::string& name);
void setup_layer(ConvTranspose1d& layer, const WeightMap& w, const std::string& name);

// One line on what a file quantizes, for `wavtok info` ("" for a float model), e.g. "int8 in 19 layers (18 convs
// with per-token activation ranges, of which 18 per step and group of 8 channels); 1 int8 attention block".
std::string quantization_summary(const WeightMap& w);

// Names the LSTM (for calibration) and switches it to int8 when the file quantizes it.
void setup_layer(Lstm& layer, const WeightMap& w, const std::string& name);
// True for the names of LSTMs (calibration statistics and int8 parameters: "….lstm").
bool is_lstm_layer(const std::string& name);

// True for the layers quantized as transposed convolutions (names ending in ".convtr").
bool is_transposed_conv_layer(const std::string& name);

bool has_int8_layers(const WeightMap& w);

constexpr const char* kVqSearchTensor = "quantizer.vq_search";
// Sets vq's preferred precision from the file's quantizer.vq_search, if any (throws naming the file on bad values).
void setup_vq_search(ResidualVQ& vq, const WeightMap& w);

// The post-softmax quantizer stored for attention block `name`, or nullptr. Throws naming the file on bad values.
std::shared_ptr<const quant::LogQParams> stored_softmax_quant(const WeightMap& w, const std::string& name);
Tensor softmax_quant_tensor(const quant::LogQParams& p);  // the stored form of p
// Names the block's probabilities NAME.softmax for calibration and installs its stored quantizer, if any.
void setup_attention(AttentionCore& core, const WeightMap& w, const std::string& name);

}  // namespace wavtok
