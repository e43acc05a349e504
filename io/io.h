// io/: file formats (PyTorch checkpoints, .npy, the .wtk model file, token files, model configs, weight maps). The
// library's public header.
#pragma once

#include "io/config.h"
#include "io/lowbit_pack.h"
#include "io/model_file.h"
#include "io/npy.h"
#include "io/raw_tensor.h"
#include "io/token_file.h"
#include "io/torch_checkpoint.h"
#include "io/weights.h"
