#include "codec/default_model.h"

#include <filesystem>

#include "core/error.h"
#include "io/model_file.h"

#ifdef WAVTOK_EMBED_DEFAULT_MODEL
extern "C" const uint8_t wavtok_default_model_begin[];
extern "C" const uint8_t wavtok_default_model_end[];
#endif
#ifdef WAVTOK_EMBED_RT_MODEL
extern "C" const uint8_t wavtok_rt_model_begin[];
extern "C" const uint8_t wavtok_rt_model_end[];
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

bool is_shipped_model_name(const std::string& name) { return name == "default" || name == "rt"; }

bool has_embedded_model(const std::string& name) {
  if (name == "default") return has_embedded_default_model();
#ifdef WAVTOK_EMBED_RT_MODEL
  if (name == "rt") return true;
#endif
  return false;
}

std::shared_ptr<const Model> load_shipped_model(const std::string& name, const std::vector<std::string>& installed) {
  if (!is_shipped_model_name(name)) throw Error("'" + name + "' is not a shipped model (default, rt)");
  if (name == "default" && has_embedded_default_model()) return load_embedded_default_model();
#ifdef WAVTOK_EMBED_RT_MODEL
  if (name == "rt") {
    ModelConfig cfg;
    WeightMap w;
    parse_model_file(wavtok_rt_model_begin, size_t(wavtok_rt_model_end - wavtok_rt_model_begin), "<embedded rt model>",
                     cfg, w);
    return Model::from_weights(std::move(cfg), std::move(w));
  }
#endif
  for (const auto& p : installed)
    if (std::filesystem::exists(p)) return Model::load(p);
  std::string where;
  for (const auto& p : installed) where += (where.empty() ? "" : ", ") + p;
  if (name == "rt")
    throw Error(
        "the 'rt' model (causal, for --preset realtime) is not trained yet: this build embeds none and none is "
        "installed" +
        (where.empty() ? std::string() : " (looked for " + where + ")") +
        "; train it with scripts/train_rt.sh (python/TRAINING.md) or pass a causal .wtk file with -m");
  throw Error("this build has no embedded default model (codec/default/wavtok-default.wtk was missing at build time)" +
              (where.empty() ? std::string() : " and none is installed (looked for " + where + ")"));
}

}  // namespace wavtok
