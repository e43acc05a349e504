// quant/: quantizer math (uniform, log/AdaLog/TanQ, SmoothQuant, mixed bits and Hadamard rotation, group-wise
// low-bit weights, reparameterisation).
// The library's public header.
#pragma once

#include "quant/gptq.h"
#include "quant/log_quant.h"
#include "quant/lowbit.h"
#include "quant/mixed.h"
#include "quant/reparam.h"
#include "quant/smooth.h"
#include "quant/uniform.h"
