// libFuzzer target: token files. The bytes are read as .wtt (native), .npy and .txt (read_tokens picks the
// format from the magic and the extension); tokens that parse are checked against the fixture model, and short
// ones that pass are decoded. Malformed input must end in wavtok::Error.
#include <cstdint>
#include <string>

#include "codec/error.h"
#include "codec/fuzz_util.h"
#include "codec/token_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model = wavtok::fuzz::tiny_model();
  for (const char* name : {"t.wtt", "t.npy", "t.txt"}) {
    const std::string path = wavtok::fuzz::scratch_file(name, data, size);
    try {
      const wavtok::TokenFile t = wavtok::read_tokens(path);
      if (t.tokens.codes.size() != size_t(t.tokens.n_q) * size_t(t.tokens.frames)) __builtin_trap();
      wavtok::check_tokens_for_model(t, *model, path);
      if (t.tokens.frames <= 64) {
        const std::vector<float> audio = model->decode(t.tokens);
        if (audio.size() != size_t(t.tokens.frames) * size_t(model->hop())) __builtin_trap();
      }
    } catch (const wavtok::Error&) {
    }
  }
  return 0;
}
