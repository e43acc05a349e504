// core/: the base every library stands on (errors, tensors, tokens, the oneDNN engine, precision and threads, shape
// caches, progress, atomic files, small shared helpers). The library's public header.
#pragma once

#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "core/settings.h"
#include "core/tensor.h"
#include "core/tokens.h"
#include "core/util.h"
