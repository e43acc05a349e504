// codec/: what a C++ user links: the Model, streaming sessions and presets, the shipped default model. The library's
// public header.
#pragma once

#include "codec/default_model.h"
#include "codec/streaming.h"
#include "core/settings.h"
#include "models/model.h"
