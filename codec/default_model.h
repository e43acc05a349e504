// The default model shipped with the engine, embedded in the binary at build time (when
// codec/default/wavtok-default.wtk exists), so `wavtok encode` works with no model argument anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace wavtok {

bool has_embedded_default_model();
// Throws when this build has no embedded model.
std::shared_ptr<const Model> load_embedded_default_model();

// Shipped models by name (`-m NAME`): "default" (codec/default/wavtok-default.wtk: non-causal, the windowed
// presets) and "rt" (codec/rt/wavtok-rt.wtk: causal, the realtime preset; docs/STREAMING.md). Each is embedded
// when its file existed at build time.
bool is_shipped_model_name(const std::string& name);
bool has_embedded_model(const std::string& name);
// The embedded model `name`, or the first of `installed` (candidate paths of an installed copy) that exists;
// throws saying what is missing (for "rt" until it is trained: that it is not trained yet).
std::shared_ptr<const Model> load_shipped_model(const std::string& name,
                                                const std::vector<std::string>& installed = {});

}  // namespace wavtok
