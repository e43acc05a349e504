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

#include "codec/model.h"

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
// Refuses tokens made by another model (fingerprint, rate, hop, n_q or out-of-range codes).
void check_tokens_for_model(const TokenFile& t, const Model& m, const std::string& path);

}  // namespace wavtok
