// Calibration and recipe application for post-training quantization (docs/PTQ.md).
//
//   recipe (YAML) + float model + calibration clips -> WeightMap of a quantized model (models/quantized.h format)
//
// Calibration runs the float encoder on the clips and the float decoder on their tokens with an activation
// observer (nn/layers.h) that keeps, per named channels-last layer (SEANet convs of the encoder and of an
// EnCodec decoder, the Vocos backbone and head), the per-channel input min/max over all frames and a reservoir
// sample of input rows; the recipe's quantizers (codec/quant) then choose the parameters from those. LSTMs are
// observed as NAME.lstm (their layer-0 input); a rule matching one runs it in int8 (models/quantized.h; act_range
// minmax or percentile of max |x|, no transform, 8-bit weights). An EnCodec decoder's transposed convs
// ("…convtr.convtr") are observed too; a rule matching one quantizes its input symmetrically (act_range on max |x|,
// zero point 0) and must not ask for a transform.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/gptq.h"

namespace wavtok {

struct PtqRule {
  std::string match;                    // ECMAScript regex searched in the layer name
  bool quantize = true;                 // false: the matching layers stay float
  int weight_bits = 8;                  // 2..8; below 8 weights are fake-quantized onto a coarser s8 grid
  std::string weight_range = "minmax";  // minmax | mse | omse  (per output channel, symmetric)
  // minmax | percentile | mse | dualclip (per tensor, asymmetric u8) | token (Conv1d only, transform none: each
  // output step's im2col row on its own u8 range at run time, Int8Params::dynamic; nothing calibrated)
  std::string act_range = "minmax";
  // With act_range token: > 0 takes a range per input step and group of this many channels instead (all of a
  // conv's channels where it has fewer; Int8Params::act_group, docs/PTQ.md "Activation ranges per step and channel
  // group"); 0 = one per im2col row.
  int act_group = 0;
  double percentile = 99.99;
  std::string transform = "none";      // none | repq (RepQ-ViT) | sqb (SmoothQuant with bias, OPT-m alpha)
  std::string repq_shared = "median";  // mean | median
  // Group-wise low-bit weights (quant/lowbit.h, docs/PTQ.md "Low-bit weights"): group_size > 0 cuts each
  // weight row into groups of that many columns; avg_bits > 0 allocates a width per group from `widths` by
  // salience (SliM-LLM) to that average, else every group takes weight_bits. Stored packed (feature lowbit).
  int64_t group_size = 0;
  double avg_bits = 0;
  std::vector<int> widths = {2, 3, 4, 8};
  bool sqc = true;  // salience-weighted search of each group's scale multiplier
  // int8 LSTM weight scales: per_matrix (one per row of every W_ih / W_hh; the own kernels) or shared (one per gate
  // row for all matrices, what oneDNN's RNN takes). Low-bit and weight-only LSTMs always share.
  std::string lstm_scales = "per_matrix";
  bool weight_only = false;  // activations stay float (no act_quant): the layer runs float on dequantized weights
  bool ln_fold = false;      // fold the repq/sqb input transform into the preceding (Ada)LayerNorm affine
  bool hadamard = false;     // rotate the layer's input, folded into the previous layer (fold_hadamard)
  // nearest | gptq: the weights' codes rounded to nearest, or by GPTQ (quant/gptq.h) on the second moment of the
  // layer's input seen in calibration (Conv1d/Linear with transform none; docs/PTQ.md "GPTQ rounding")
  std::string weight_rounding = "nearest";
};

struct PtqRecipe {
  std::string name, description;
  std::vector<PtqRule> rules;       // first match wins; layers matching none stay float
  int bandwidth_id = 0;             // AdaLayerNorm row used while calibrating
  int64_t max_rows = 4096;          // reservoir rows kept per layer
  double mixed_avg_bits = 0;        // > 0: greedy W4/W8 allocation over the quantized layers to this average
  std::string softmax = "none";     // none | log2 (log-sqrt2, RepQ-ViT) | adalog | tanq: post-softmax quantizer
  int softmax_bits = 8;             // 2..8
  std::string vq_search = "f32";    // f32 | int8: the codebook search the model asks for (exact: same tokens)
  std::string attention = "float";  // float | int8: Q K^T and P V in int8 (AttentionCore::set_int8, nn/layers.h)
  // f32 | bf16: the SEANet encoder's dense convs (not int8 by a rule) in bf16, weights rounded to bf16 in the file
  std::string encoder_convs = "f32";
};

PtqRecipe parse_recipe(const std::string& yaml_text, const std::string& origin);
// A recipe file, or, where no file of that name exists, a built-in recipe by name (with or without ".yaml").
PtqRecipe load_recipe(const std::string& path);

// The recipes of configs/quant/*.yaml, built into the library (name = file stem, text = file contents).
struct BuiltinRecipe {
  const char* name;
  const char* text;
};
const std::vector<BuiltinRecipe>& builtin_recipes();

struct LayerStats {
  int cin = 0;
  std::vector<float> lo, hi;  // per input channel over everything seen
  std::vector<float> rows;    // reservoir sample [n, cin]
  int64_t seen = 0;
  int64_t sampled() const { return cin ? int64_t(rows.size()) / cin : 0; }
  // Layers whose rule rounds by GPTQ: E[v v^T] of the im2col columns v (Cin*K, c major) the layer's output steps
  // read (a Linear's input rows), and the conv geometry they were gathered with.
  quant::SecondMoment moment;
  int kernel = 1, stride = 1, dilation = 1;
};

// Attention probabilities are recorded as NAME.softmax with cin = 1: every probability is one "row".
using CalibStats = std::map<std::string, LayerStats>;

// Encodes each clip and decodes its float tokens with the observer on; clips are mono audio at the model's rate.
// `moments` names the layers whose input second moment is gathered too (moment_layers: those the recipe rounds
// by GPTQ); empty: none.
CalibStats calibrate(const Model& model, const std::vector<std::vector<float>>& clips, int bandwidth_id,
                     int64_t max_rows, const std::function<bool(const std::string&)>& moments = {});
// The layers whose first matching rule of the recipe quantizes them with weight_rounding: gptq.
std::function<bool(const std::string&)> moment_layers(const PtqRecipe& recipe);

struct PtqLayerReport {
  std::string name;
  int weight_bits = 8;  // the largest width (low-bit layers)
  std::string transform;
  double alpha = 0;        // sqb
  double rel_mse = 0;      // output error of the quantized layer on the calibration sample, relative to its power
  int64_t weights = 0;     // parameter count
  double avg_bits = 0;     // low-bit layers: average code bits
  int64_t group_size = 0;  // low-bit layers
  // weight_rounding gptq: the relative output error E|(W - Q) x|^2 / E|W x|^2 under the calibration input's second
  // moment, rounding to nearest on the layer's grid against GPTQ's rounding (0 for other layers)
  double gptq_error_nearest = 0, gptq_error = 0;
};

// The float model's weights with the recipe applied (gamma folded into pwconv2, transforms, int8 tensors).
WeightMap apply_recipe(const Model& model, const PtqRecipe& recipe, const CalibStats& stats,
                       std::vector<PtqLayerReport>* report = nullptr);

// The float model's weights with the block Hadamard rotations the recipe asks for (`hadamard: true`) folded
// into the previous layers, so the model computes the same function (docs/PTQ.md "Hadamard rotation"); run it
// before calibrate(). Foldable: an attention block's proj_out (its input rotated through v's output rows).
// Each rotated layer gets NAME.input_rotation [1] = block size. Throws on a rule that would rotate nothing.
WeightMap fold_hadamard(const Model& model, const PtqRecipe& recipe, std::vector<std::string>* rotated = nullptr);
// fold_hadamard as a model, or `model` itself when the recipe rotates nothing.
std::shared_ptr<const Model> prepare_for_recipe(std::shared_ptr<const Model> model, const PtqRecipe& recipe);

}  // namespace wavtok
