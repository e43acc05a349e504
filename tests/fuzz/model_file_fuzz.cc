// libFuzzer target: the engine's model file (.wtk) from memory, then building a Model from what it holds, which
// checks the config against the tensor shapes. Malformed input must end in wavtok::Error.
#include <cstdint>

#include "core/error.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    wavtok::ModelConfig config;
    wavtok::WeightMap weights;
    wavtok::parse_model_file(data, size, "fuzz.wtk", config, weights);
    auto model = wavtok::Model::from_weights(std::move(config), std::move(weights));
    (void)model;
  } catch (const wavtok::Error&) {}
  return 0;
}
