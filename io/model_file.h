// The engine's own model file (".wtk"): one memory-mappable file with a versioned header, the model
// config as YAML text, a tensor table and 64-byte aligned tensor data (weight norm folded).
//
// Layout (little-endian):
//   0   char[8]  magic "WAVTOKMF"
//   8   u32      format version: 1 = float32 tensors only; 2 = the next field lists required features
//   12  u32      version 1: flags (0, ignored); version 2: required features (kModelFeature*), a reader refuses
//                a file with a feature bit it does not know
//   16  u64      config length in bytes (YAML text follows the header)
//   24  u64      tensor count
//   32  config text, then per tensor: u32 name length, name bytes, u32 dtype (0 = f32, 1 = s8), u32 ndim,
//       i64 dims[ndim], u64 data offset from file start, u64 data bytes
//   data: each tensor at a 64-byte aligned offset.
//
// Float models are written as version 1, byte for byte as before. A model with int8 layers (models/quantized.h) is
// version 2 with kModelFeatureInt8: each int8 layer's NAME.weight is stored as its s8 codes (dtype 1, the
// codes the int8 layer computes, see int8_weight_codes) beside the f32 NAME.weight_scale [Cout]; the reader
// hands out codes * scale as float, from which the layer recovers exactly the same codes. A reader that predates
// version 2 refuses such a file ("version 2 is not supported") instead of running the int8 layers in float.
//
// Low-bit weights (kModelFeatureLowBit; quant/lowbit.h, docs/PTQ.md "Low-bit weights"): a quantizable weight W
// (NAME.weight, or an int8 LSTM's NAME.weight_ih_lK / NAME.weight_hh_lK) with W_groups [rows, G, 2] (per group:
// bits, integer multiplier) and W_group_size [1] beside it (and NAME.weight_scale): W goes out as dtype 3
// (packed: the group codes as a bit stream, its byte count set by the groups) and W_groups as dtype 2 (u8). The reader
// unpacks the codes c = m * q and hands out c * weight_scale[o], as for s8 weights; every malformed group, code, size
// or padding bit is refused with the file's name.
#pragma once

#include <string>

#include "io/config.h"
#include "io/weights.h"

namespace wavtok {

constexpr uint32_t kModelFileVersion = 1;                // float models
constexpr uint32_t kModelFileVersionFeatures = 2;        // header carries required features
constexpr uint32_t kModelFeatureInt8 = 1u << 0;          // s8 weights + int8 layer parameters (models/quantized.h)
constexpr uint32_t kModelFeatureSoftmaxQuant = 1u << 1;  // attention probabilities fake-quantized (models/quantized.h)
constexpr uint32_t kModelFeatureLowBit = 1u << 2;        // packed group-wise low-bit weights (quant/lowbit.h)
// Q K^T and P V of an attention block in int8 (NAME.attn_int8, models/quantized.h).
constexpr uint32_t kModelFeatureInt8Attention = 1u << 3;
// Low-rank float adapters beside a layer's (quantized) weight, NAME.lora_a [r, Cin] and NAME.lora_b [Cout, r] on a
// Linear, NAME.lora_a [r, Cin, K] and NAME.lora_b [Cout, r] on a convolution (RILQ, docs/PTQ.md "Low-rank
// adapters"; models/quantized.h).
constexpr uint32_t kModelFeatureLowRank = 1u << 4;
// Per-token (dynamic) activation ranges of an int8 Conv1d, NAME.act_dynamic [1] = 1 beside NAME.act_quant (docs/PTQ.md
// "Per-token activations", models/quantized.h): a reader without it would run the layer on the placeholder range.
constexpr uint32_t kModelFeatureTokenAct = 1u << 5;
// The SEANet encoder's dense convs in bf16: ENCODER_PREFIX + kEncoderConvBf16 = [1] (a recipe's `encoder_convs: bf16`,
// docs/PTQ.md "bf16 encoder convolutions"). A reader without it would run them in float32, on other tokens than the
// file was measured with.
constexpr uint32_t kModelFeatureBf16Encoder = 1u << 6;
constexpr const char* kEncoderConvBf16 = "conv_bf16";
// Activation ranges per input step and group of N channels on a per-token Conv1d, NAME.act_group [1] = N (docs/PTQ.md
// "Activation ranges per step and channel group", models/quantized.h): a reader without it would run the layer on
// one range per im2col row, other tokens than the file was trained for.
constexpr uint32_t kModelFeatureGroupAct = 1u << 7;
constexpr uint32_t kKnownModelFeatures = kModelFeatureInt8 | kModelFeatureSoftmaxQuant | kModelFeatureLowBit |
                                         kModelFeatureInt8Attention | kModelFeatureLowRank | kModelFeatureTokenAct |
                                         kModelFeatureBf16Encoder | kModelFeatureGroupAct;

// The features a file holding these weights requires (0 for a float model).
uint32_t required_model_features(const WeightMap& weights);

struct ModelFileLimits {
  int64_t max_tensors = 100000;
  int64_t max_config_bytes = 1 << 20;
  int max_ndim = 8;
  int max_name = 4096;
};

bool is_model_file(const std::string& path);  // checks the magic only
void write_model_file(const std::string& path, const ModelConfig& config, const WeightMap& weights);
// Memory-maps the file, validates every offset and size against the file length, and copies tensors out.
void read_model_file(const std::string& path, ModelConfig& config, WeightMap& weights,
                     const ModelFileLimits& limits = {});
// The same from bytes in memory (e.g. the model embedded in the binary); `origin` names it in errors.
void parse_model_file(const uint8_t* data, size_t size, const std::string& origin, ModelConfig& config,
                      WeightMap& weights, const ModelFileLimits& limits = {});

}  // namespace wavtok
