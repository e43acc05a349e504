// libFuzzer target: the pickle virtual machine behind load_torch_checkpoint, on raw data.pkl bytes.
// Malformed input must end in wavtok::Error; any other exception, crash, leak or sanitizer report is a finding.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const wavtok::CheckpointLimits limits;  // the shipped defaults
    auto g = wavtok::torch_pickle::run_pickle(std::string_view(reinterpret_cast<const char*>(data), size),
                                              "fuzz: data.pkl", limits);
    (void)g;
  } catch (const wavtok::Error&) {}
  return 0;
}
