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
// Version 2 (written only for tokens of an adapted model, one with a parent; `wavtok adapt`) inserts
//   48  u64     fingerprint of the parent of the model that made the tokens
//   56  i32     codes[n_q][F]
// so that the parent model, which cannot know its children, can recognise them (see token_lineage).
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
  uint64_t parent_fingerprint = 0;  // the parent of the model that made them (adapted models), else 0
};

// How tokens made by the model with fingerprint `fp` (and parent `parent_fp`, 0 for none) relate to the model
// with fingerprint `model_fp` (and parent `model_parent_fp`).
// Only a parent and its direct child are related: an adapted codebook keeps each code near its old centroid
// (codec/adapt.h), so their tokens stay meaningful for each other. Siblings and grandparents are not.
enum class TokenLineage { Same, FromParent, FromChild, Unrelated };
TokenLineage token_lineage(uint64_t fp, uint64_t parent_fp, uint64_t model_fp, uint64_t model_parent_fp);
const char* lineage_name(TokenLineage l);
// What to tell about tokens of model `fp` given to model `model_fp`: the refusal (Unrelated) or the warning
// (parent / child), both naming the two fingerprints; empty for Same.
std::string lineage_message(TokenLineage l, uint64_t fp, uint64_t model_fp);
// 16 hex digits, as `wavtok info` and the messages print fingerprints.
std::string fingerprint_str(uint64_t fp);

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
