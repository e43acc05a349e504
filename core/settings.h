// Process-wide engine settings a user sets (precision, threads) and the count of oneDNN primitives made; without
// any oneDNN header, so that the codec's public header can offer them (the engine itself: core/dnnl_util.h).
#pragma once

#include <cstdint>

namespace wavtok {

// Arithmetic of the matrix layers. BF16 lets oneDNN compute convolutions, inner products and matmuls with
// bfloat16 inputs and float32 accumulation (fast on AVX512-BF16/AMX CPUs); activations stay float32 between layers.
// F64 makes the encoder's convolutions accumulate in float64 (everything else as F32): latents about twice as
// close to upstream's as F32's, which is what the deepest levels of a residual VQ need to pick upstream's code
// (EnCodec at 24 kbps: 99.49 % -> 99.68 %); the encode is slower (plain loops instead of oneDNN).
enum class Precision { F32, BF16, F64 };
// Set before running a model; primitives are cached per precision. Throws if BF16 is asked for on a CPU
// without native bf16 support (see bf16_supported()).
void set_precision(Precision p);
Precision get_precision();
bool bf16_supported();

// Threads used by oneDNN (OpenMP) in this process; 0 leaves the default.
void set_num_threads(int n);
int get_num_threads();

// How many per-shape entries (oneDNN primitives) all ShapeCaches of the process have made: lets tests and
// warm-up code check that a run created none.
uint64_t shapes_created();

}  // namespace wavtok
