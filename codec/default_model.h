// The default model shipped with the engine, embedded in the binary at build time (when
// codec/default/wavtok-default.wtk exists), so `wavtok encode` works with no model argument anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "models/model.h"

namespace wavtok {

bool has_embedded_default_model();
// Throws when this build has no embedded model.
std::shared_ptr<const Model> load_embedded_default_model();

}  // namespace wavtok
