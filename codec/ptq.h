// Post-training quantization: how int8 layers are stored in a model file, and how the model builds them.
//
// A quantized model is an ordinary .wtk whose quantized layers carry, beside NAME.weight / NAME.bias (already
// the transformed W' and b', see Int8Params in codec/layers.h), these float32 tensors:
//   NAME.act_quant    [2]     activation scale and zero point (u8 codes)
//   NAME.act_shift    [Cin]   optional per-input-channel shift   (SmoothQuant-b / RepQ-ViT)
//   NAME.act_smooth   [Cin]   optional per-input-channel divisor
//   NAME.weight_scale [Cout]  s8 weight scale per output channel
// NAME is the layer's weight prefix, e.g. "backbone.convnext.0.pwconv1". A layer without NAME.act_quant runs in
// float. Such a file must run its quantized layers in int8: W' differs from W unless the shift/divisor are absent.
#pragma once

#include <optional>
#include <string>

#include "codec/layers.h"
#include "codec/weights.h"

namespace wavtok {

// The int8 parameters stored for layer `name`, or nothing when it is not quantized. Throws naming the
// file on malformed tensors.
std::optional<Int8Params> stored_int8_params(const WeightMap& w, const std::string& name, int cin, int cout);

// Names the layer (for calibration) and switches it to int8 when the file quantizes it.
void setup_layer(Linear& layer, const WeightMap& w, const std::string& name);
void setup_layer(Conv1d& layer, const WeightMap& w, const std::string& name);

bool has_int8_layers(const WeightMap& w);

}  // namespace wavtok
