// Token files. The native format (".wtt") is small and self-describing:
//   0   char[8] magic "WAVTOKTK"
//   8   u32     format version (1)
//   12  u32     flags (0)
//   16  u64     fingerprint of the model that made the tokens (config + codebooks)
//   24  u32     sample rate (Hz)
//   28  u32     hop (samples per frame); frame rate = sample rate / hop
//   32  u32     number of codebooks n_q
//   36  u32     codebook size (bins)
//   40  u64     frame count F
//   48  i32     codes[n_q][F], row-major, little-endian
// Exports for other tools: ".npy" (int64, shape (n_q, 1, F), the layout EnCodec's quantizer uses) and
// ".txt" (one line per codebook, space-separated codes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tokens.h"

namespace wavtok {

enum class TokenFormat { Native, Npy, Txt };

struct TokenFile {
  Tokens tokens;
  uint64_t fingerprint = 0;  // 0 when the format does not carry one (npy, txt)
  int sample_rate = 0;
  int hop = 0;
  int bins = 0;
};

struct TokenLimits {
  int64_t max_frames = int64_t(1) << 28;
  int max_n_q = 1024;
};

TokenFormat token_format_for(const std::string& path, const std::string& requested = "");
void write_tokens(const std::string& path, const TokenFile& t, TokenFormat fmt);
TokenFile read_tokens(const std::string& path, const TokenLimits& limits = {});

// Token streams on pipes (`wavtok stream-encode -o -`, `stream-decode -`): one line per frame holding its n_q codes,
// space-separated, codebook 0 first. Unlike the .txt file (one line per codebook) it is written and read frame by
// frame, as streaming sessions produce and consume tokens.
std::string token_line(const int32_t* codes, int n_q);  // without the newline
// Parses one frame line, appending its codes to `out`; returns how many (0 for a blank line). Throws an Error
// naming `where` (e.g. "stdin line 12") for anything but integers in 0..bins-1, or more than max_n_q codes.
int parse_token_line(const std::string& line, int bins, std::vector<int32_t>& out, const std::string& where,
                     int max_n_q = 1024);

}  // namespace wavtok
