// models/: the model graphs (SEANet, Vocos, the WavTokenizer/EnCodec Model with its residual VQ) and how stored
// int8 layers load. The library's public header; unlike models/model.h it brings the layers (and oneDNN) along.
#pragma once

#include "models/causal_stream.h"
#include "models/model.h"
#include "models/quantized.h"
#include "models/seanet.h"
#include "models/seanet_stream.h"
#include "models/vocos.h"
#include "vq/rvq.h"
