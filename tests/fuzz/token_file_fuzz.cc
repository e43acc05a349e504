// libFuzzer target: token files. The bytes are read as .wtt (native), .npy and .txt (read_tokens picks the
// format from the magic and the extension); tokens that parse are checked against the fixture model, and short
// ones that pass are decoded. Each line is also parsed as a frame line (the pipe format); what parses must print
// back to an equal line. Malformed input must end in wavtok::Error.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/token_file.h"
#include "tests/fuzz/fuzz_util.h"

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
    } catch (const wavtok::Error&) {}
  }
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (size_t at = 0; at <= text.size();) {
    const size_t nl = std::min(text.find('\n', at), text.size());
    std::vector<int32_t> codes;
    try {
      const int n = wavtok::parse_token_line(text.substr(at, nl - at), 4096, codes, "fuzz", 8);
      std::vector<int32_t> again;
      if (n != int(codes.size()) ||
          wavtok::parse_token_line(wavtok::token_line(codes.data(), n), 4096, again, "", 8) != n || again != codes)
        __builtin_trap();
    } catch (const wavtok::Error&) {}
    at = nl + 1;
  }
  return 0;
}
