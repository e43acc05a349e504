// libFuzzer target: read_npy (versions 1.0-3.0, C and Fortran order, every dtype), then the conversions callers
// use. Malformed input must end in wavtok::Error.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/npy.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = wavtok::fuzz::scratch_file("a.npy", data, size);
  try {
    const wavtok::RawTensor t = wavtok::read_npy(path);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (t.bytes.size() != size_t(n) * wavtok::dtype_size(t.dtype)) __builtin_trap();
    if (t.to_float().size() != size_t(n)) __builtin_trap();
    if (t.to_int64().size() != size_t(n)) __builtin_trap();
  } catch (const wavtok::Error&) {}
  return 0;
}
