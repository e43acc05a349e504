#include "io/token_file.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/file_util.h"
#include "core/tensor.h"
#include "core/util.h"
#include "io/npy.h"

namespace wavtok {
namespace {

constexpr char kMagic[8] = {'W', 'A', 'V', 'T', 'O', 'K', 'T', 'K'};

// A word from a file, fit for an error message: at most 32 bytes, non-printable bytes as \xNN (binary input
// would otherwise cut the message at its first NUL and write control bytes to the terminal).
std::string printable(const std::string& word) {
  std::string out;
  for (size_t i = 0; i < word.size() && i < 32; ++i) {
    const unsigned char c = static_cast<unsigned char>(word[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (word.size() > 32) out += "...";
  return out;
}

// What one line of a text format may hold, and how its errors read.
struct CodeLine {
  int64_t max_code;      // largest code accepted
  std::string range;     // how the error names 0..max_code
  int64_t max_count;     // most codes on one line
  std::string too_many;  // the error for more than max_count codes
  const char* layout;    // what a line holds, for the "is not a token" error
};

// The one code parser of both text formats: appends the unsigned decimal codes of `line` (separated by spaces or
// tabs) to `out` and returns how many. Throws an Error naming `where` for anything else.
int64_t parse_codes(const std::string& line, const CodeLine& syntax, std::vector<int32_t>& out,
                    const std::string& where) {
  int64_t n = 0;
  size_t at = 0;
  while (true) {
    at = line.find_first_not_of(" \t\r", at);
    if (at == std::string::npos) break;
    const size_t end = std::min(line.find_first_of(" \t\r", at), line.size());
    const std::string tok = line.substr(at, end - at);
    at = end;
    errno = 0;
    char* stop = nullptr;
    const long long v = std::strtoll(tok.c_str(), &stop, 10);
    if (*stop || errno == ERANGE || !std::isdigit(static_cast<unsigned char>(tok[0])))
      throw Error(where + ": '" + printable(tok) + "' is not a token (" + syntax.layout + ")");
    if (v > syntax.max_code) throw Error(where + ": token " + tok + " is outside " + syntax.range);
    if (++n > syntax.max_count) throw Error(where + ": " + syntax.too_many);
    out.push_back(static_cast<int32_t>(v));
  }
  return n;
}

}  // namespace

TokenFormat token_format_for(const std::string& path, const std::string& requested) {
  if (requested == "npy") return TokenFormat::Npy;
  if (requested == "txt") return TokenFormat::Txt;
  if (requested == "wtt" || requested == "native") return TokenFormat::Native;
  if (!requested.empty()) throw Error("unknown token format '" + requested + "' (use wtt, npy or txt)");
  if (ends_with(path, ".npy")) return TokenFormat::Npy;
  if (ends_with(path, ".txt")) return TokenFormat::Txt;
  return TokenFormat::Native;
}

void write_tokens(const std::string& path, const TokenFile& t, TokenFormat fmt) {
  const Tokens& tk = t.tokens;
  if (tk.codes.size() != size_t(tk.n_q) * size_t(tk.frames))
    throw Error("write_tokens: code count does not match n_q x frames");
  if (fmt == TokenFormat::Npy) {
    RawTensor r;
    r.dtype = DType::I64;
    r.shape = {tk.n_q, 1, tk.frames};
    r.bytes.resize(tk.codes.size() * 8);
    for (size_t i = 0; i < tk.codes.size(); ++i) {
      int64_t v = tk.codes[i];
      std::memcpy(r.bytes.data() + i * 8, &v, 8);
    }
    write_npy(path, r);
    return;
  }
  AtomicFile out(path);
  std::FILE* f = out.file();
  if (fmt == TokenFormat::Txt) {
    for (int q = 0; q < tk.n_q; ++q) {
      for (int64_t i = 0; i < tk.frames; ++i) std::fprintf(f, i ? " %d" : "%d", tk.codes[q * tk.frames + i]);
      std::fputc('\n', f);
    }
  } else {
    // Version 1 byte for byte unless the tokens come from an adapted model (one with a parent).
    uint32_t version = t.parent_fingerprint ? 2 : 1, flags = 0, sr = t.sample_rate, hop = t.hop, nq = tk.n_q,
             bins = t.bins;
    uint64_t fp = t.fingerprint, frames = tk.frames, parent = t.parent_fingerprint;
    std::fwrite(kMagic, 1, 8, f);
    std::fwrite(&version, 4, 1, f);
    std::fwrite(&flags, 4, 1, f);
    std::fwrite(&fp, 8, 1, f);
    std::fwrite(&sr, 4, 1, f);
    std::fwrite(&hop, 4, 1, f);
    std::fwrite(&nq, 4, 1, f);
    std::fwrite(&bins, 4, 1, f);
    std::fwrite(&frames, 8, 1, f);
    if (version == 2) std::fwrite(&parent, 8, 1, f);
    std::fwrite(tk.codes.data(), 4, tk.codes.size(), f);
  }
  out.commit();
}

TokenFile read_tokens(const std::string& path, const TokenLimits& limits) {
  TokenFile t;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open token file");
  char magic[8] = {};
  f.read(magic, 8);
  const bool native = f.gcount() == 8 && std::memcmp(magic, kMagic, 8) == 0;
  if (native) {
    auto get = [&](auto& v) {
      f.read(reinterpret_cast<char*>(&v), sizeof(v));
      if (f.gcount() != sizeof(v)) throw Error(path + ": token file is truncated (header)");
    };
    uint32_t version, flags, sr, hop, nq, bins;
    uint64_t fp, frames, parent = 0;
    get(version);
    if (version != 1 && version != 2)
      throw Error(path + ": token file version " + std::to_string(version) + " is not supported");
    get(flags);
    get(fp);
    get(sr);
    get(hop);
    get(nq);
    get(bins);
    get(frames);
    if (version == 2) {
      get(parent);
      if (parent == 0) throw Error(path + ": token file version 2 names no parent model (fingerprint 0)");
    }
    const uint64_t header = version == 2 ? 56 : 48;
    if (nq < 1 || nq > uint32_t(limits.max_n_q))
      throw Error(path + ": token file claims " + std::to_string(nq) + " codebooks");
    if (frames > uint64_t(limits.max_frames))
      throw Error(path + ": token file claims " + std::to_string(frames) + " frames");
    f.seekg(0, std::ios::end);
    const uint64_t size = static_cast<uint64_t>(f.tellg());
    const uint64_t want = header + uint64_t(nq) * frames * 4;
    if (size < want)
      throw Error(path + ": token file is truncated (" + std::to_string(size) + " bytes, header promises " +
                  std::to_string(want) + ")");
    if (size > want)
      throw Error(path + ": token file has " + std::to_string(size - want) + " unexpected trailing bytes");
    f.seekg(std::streamoff(header));
    t.tokens.n_q = static_cast<int>(nq);
    t.tokens.frames = static_cast<int64_t>(frames);
    t.tokens.codes.resize(size_t(nq) * frames);
    f.read(reinterpret_cast<char*>(t.tokens.codes.data()), std::streamsize(t.tokens.codes.size() * 4));
    t.fingerprint = fp;
    t.parent_fingerprint = parent;
    t.sample_rate = static_cast<int>(sr);
    t.hop = static_cast<int>(hop);
    t.bins = static_cast<int>(bins);
    return t;
  }
  if (ends_with(path, ".npy") || std::string(magic, 6) == "\x93NUMPY") {
    RawTensor r = read_npy(path);
    int64_t nq = 1, frames = 0;
    if (r.shape.size() == 3 && r.shape[1] == 1) {
      nq = r.shape[0];
      frames = r.shape[2];
    } else if (r.shape.size() == 2) {
      nq = r.shape[0];
      frames = r.shape[1];
    } else if (r.shape.size() == 1) {
      frames = r.shape[0];
    } else {
      throw Error(path + ": token array has shape " + shape_str(r.shape) +
                  "; expected (n_q, 1, frames), (n_q, frames) or (frames)");
    }
    if (r.dtype == DType::F32 || r.dtype == DType::F64 || r.dtype == DType::F16 || r.dtype == DType::BF16)
      throw Error(
          path + ": token array has a floating-point dtype; tokens must be integers (is this a latent? use --latents)");
    if (nq < 1 || nq > limits.max_n_q || frames > limits.max_frames) throw Error(path + ": token array is too large");
    auto v = r.to_int64();
    t.tokens.n_q = static_cast<int>(nq);
    t.tokens.frames = frames;
    t.tokens.codes.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] < 0 || v[i] > INT32_MAX) throw Error(path + ": token " + std::to_string(v[i]) + " is out of range");
      t.tokens.codes[i] = static_cast<int32_t>(v[i]);
    }
    return t;
  }
  // Text: one line per codebook.
  f.clear();
  f.seekg(0);
  const CodeLine syntax{INT32_MAX, "0.." + std::to_string(INT32_MAX), limits.max_frames, "too many frames",
                        "not a wavtok token file? expected one line per codebook"};
  std::string line;
  int64_t lineno = 0, frames = -1;
  int n_q = 0;
  while (std::getline(f, line)) {
    ++lineno;
    const int64_t n = parse_codes(line, syntax, t.tokens.codes, path + " line " + std::to_string(lineno));
    if (n == 0) continue;  // blank line
    if (frames >= 0 && n != frames) throw Error(path + ": codebook lines have different lengths (truncated?)");
    frames = n;
    if (++n_q > limits.max_n_q) throw Error(path + ": too many codebook lines");
  }
  if (n_q == 0) throw Error(path + ": token file is empty");
  t.tokens.n_q = n_q;
  t.tokens.frames = frames;
  return t;
}

std::string token_line(const int32_t* codes, int n_q) {
  std::string s;
  for (int q = 0; q < n_q; ++q) {
    if (q) s += ' ';
    s += std::to_string(codes[q]);
  }
  return s;
}

int parse_token_line(const std::string& line, int bins, std::vector<int32_t>& out, const std::string& where,
                     int max_n_q) {
  const CodeLine syntax{bins - 1, "this model's codebook (0.." + std::to_string(bins - 1) + ")", max_n_q,
                        "more than " + std::to_string(max_n_q) + " codes on one line (one per codebook)",
                        "expected one frame per line: n_q codes"};
  return static_cast<int>(parse_codes(line, syntax, out, where));
}

std::string fingerprint_str(uint64_t fp) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fp));
  return hex;
}

TokenLineage token_lineage(uint64_t fp, uint64_t parent_fp, uint64_t model_fp, uint64_t model_parent_fp) {
  if (fp == model_fp) return TokenLineage::Same;
  if (fp != 0 && fp == model_parent_fp) return TokenLineage::FromParent;
  if (parent_fp != 0 && parent_fp == model_fp) return TokenLineage::FromChild;
  return TokenLineage::Unrelated;
}

const char* lineage_name(TokenLineage l) {
  switch (l) {
    case TokenLineage::Same:
      return "same";
    case TokenLineage::FromParent:
      return "parent";
    case TokenLineage::FromChild:
      return "child";
    case TokenLineage::Unrelated:
      break;
  }
  return "unrelated";
}

std::string lineage_message(TokenLineage l, uint64_t fp, uint64_t model_fp) {
  switch (l) {
    case TokenLineage::Same:
      return {};
    case TokenLineage::Unrelated:
      return "tokens were made by a different model (fingerprint " + fingerprint_str(fp) + ", this model " +
             fingerprint_str(model_fp) + "); decode them with the model that made them";
    case TokenLineage::FromParent:
    case TokenLineage::FromChild:
      break;
  }
  return "tokens were made by model " + fingerprint_str(fp) + ", the " + lineage_name(l) + " of this model " +
         fingerprint_str(model_fp) + (l == TokenLineage::FromParent ? " (adapted from it" : " (adapted from this one") +
         " by wavtok adapt); decoding them anyway: codes keep their meaning, the audio may differ slightly";
}

}  // namespace wavtok
