#include "codec/default_model.h"

#include "core/error.h"
#include "io/model_file.h"

#ifdef WAVTOK_EMBED_DEFAULT_MODEL
extern "C" const uint8_t wavtok_default_model_begin[];
extern "C" const uint8_t wavtok_default_model_end[];
#endif

namespace wavtok {

bool has_embedded_default_model() {
#ifdef WAVTOK_EMBED_DEFAULT_MODEL
  return true;
#else
  return false;
#endif
}

std::shared_ptr<const Model> load_embedded_default_model() {
#ifdef WAVTOK_EMBED_DEFAULT_MODEL
  ModelConfig cfg;
  WeightMap w;
  parse_model_file(wavtok_default_model_begin, size_t(wavtok_default_model_end - wavtok_default_model_begin),
                   "<embedded default model>", cfg, w);
  return Model::from_weights(std::move(cfg), std::move(w));
#else
  throw Error("this build has no embedded default model (codec/default/wavtok-default.wtk was missing at build time)");
#endif
}

}  // namespace wavtok
