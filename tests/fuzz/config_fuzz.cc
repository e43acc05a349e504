// libFuzzer target: model configs. The same bytes go to ModelConfig::from_yaml (the YAML a .wtk embeds) and to
// parse_release_config (a release config.yaml, read from a file) followed by validate_config, as Model::load does.
// Malformed input must end in wavtok::Error.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const wavtok::ModelConfig c = wavtok::ModelConfig::from_yaml(text, "fuzz.yaml");
    // A config that validates must survive its own round trip.
    const wavtok::ModelConfig again = wavtok::ModelConfig::from_yaml(c.to_yaml(), "fuzz.yaml (round trip)");
    if (again.to_yaml() != c.to_yaml()) __builtin_trap();
    (void)c.frame_rate();
  } catch (const wavtok::Error&) {}
  try {
    const std::string path = wavtok::fuzz::scratch_file("config.yaml", data, size);
    const wavtok::ModelConfig c = wavtok::parse_release_config(path);
    wavtok::validate_config(c, path);
  } catch (const wavtok::Error&) {}
  return 0;
}
