#include "io/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <string_view>

#include "core/error.h"

namespace wavtok {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }

struct Descr {
  const char* text;
  DType dtype;
};
// NumPy writes '|' for one-byte types and '<' for little-endian multi-byte ones.
constexpr Descr kDescrs[] = {
    {"<f4", DType::F32}, {"<f8", DType::F64}, {"<f2", DType::F16}, {"<i8", DType::I64},  {"<i4", DType::I32},
    {"<i2", DType::I16}, {"|i1", DType::I8},  {"|u1", DType::U8},  {"|b1", DType::Bool},
};

DType parse_descr(const std::string& path, std::string d) {
  if (d.size() == 3 && d[0] == '>' && d[2] != '1') fail(path, "big-endian dtype '" + d + "' is not supported");
  // '=' is native order (little-endian on every platform we run on); one-byte types may carry any order mark.
  if (d.size() == 3 && (d[0] == '=' || (d[2] == '1' && (d[0] == '<' || d[0] == '>')))) d[0] = d[2] == '1' ? '|' : '<';
  for (const auto& e : kDescrs)
    if (d == e.text) return e.dtype;
  fail(path, "unsupported dtype '" + d + "'");
}

const char* descr_of(const std::string& path, DType t) {
  for (const auto& e : kDescrs)
    if (e.dtype == t) return e.text;
  fail(path, std::string("dtype ") + dtype_name(t) + " has no .npy equivalent");
}

// Minimal parser for the header's Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view s) : path_(path), s_(s) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool got_descr = false, got_fortran = false, got_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        descr = quoted();
        got_descr = true;
      } else if (key == "fortran_order") {
        skip_ws();
        if (s_.substr(i_, 4) == "True") {
          fortran = true;
          i_ += 4;
        } else if (s_.substr(i_, 5) == "False") {
          fortran = false;
          i_ += 5;
        } else {
          bad("fortran_order is not True/False");
        }
        got_fortran = true;
      } else if (key == "shape") {
        shape = tuple();
        got_shape = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != '}') bad("expected ',' or '}'");
    }
    if (!got_descr || !got_fortran || !got_shape) bad("missing descr, fortran_order or shape");
  }

 private:
  [[noreturn]] void bad(const std::string& what) { fail(path_, "malformed .npy header: " + what); }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  char peek() {
    if (i_ >= s_.size()) bad("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return dims;
      }
      if (peek() < '0' || peek() > '9') bad("shape entries must be non-negative integers");
      int64_t v = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (int64_t(1) << 56)) bad("shape entry too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (dims.size() >= 64) bad("too many dimensions");
      dims.push_back(v);
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') bad("expected ',' or ')' in shape");
    }
  }

  const std::string& path_;
  std::string_view s_;
  size_t i_ = 0;
};

// NumPy saves arrays that are column-major in memory (e.g. transposed views) in Fortran order;
// RawTensor is always row-major, so reorder: element (i0..in-1) sits at sum(i_k * prod(d_j, j < k)).
std::vector<uint8_t> fortran_to_c(const std::vector<uint8_t>& src, const std::vector<int64_t>& shape, size_t es) {
  const size_t nd = shape.size();
  if (nd < 2 || src.empty()) return src;
  std::vector<int64_t> stride(nd);
  int64_t s = 1;
  for (size_t d = 0; d < nd; ++d) {
    stride[d] = s;
    s *= shape[d];
  }
  std::vector<uint8_t> out(src.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  const size_t n = src.size() / es;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + i * es, src.data() + size_t(off) * es, es);
    for (size_t d = nd; d-- > 0;) {
      off += stride[d];
      if (++idx[d] < shape[d]) break;
      off -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

RawTensor read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  f.seekg(0, std::ios::end);
  const std::streamoff file_size = f.tellg();
  f.seekg(0);
  if (file_size < 0) fail(path, "cannot determine file size");

  uint8_t pre[12];
  if (file_size < 10 || !f.read(reinterpret_cast<char*>(pre), 10)) fail(path, "too short to be a .npy file");
  if (std::memcmp(pre, kMagic, kMagicLen) != 0) fail(path, "not a .npy file (bad magic)");
  const int major = pre[6];
  size_t header_len, prefix;
  if (major == 1) {
    header_len = pre[8] | (size_t(pre[9]) << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (!f.read(reinterpret_cast<char*>(pre + 10), 2)) fail(path, "truncated .npy header");
    header_len = pre[8] | (size_t(pre[9]) << 8) | (size_t(pre[10]) << 16) | (size_t(pre[11]) << 24);
    prefix = 12;
  } else {
    fail(path, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > size_t(file_size) - prefix) fail(path, "truncated .npy header");
  std::string header(header_len, '\0');
  if (!f.read(header.data(), std::streamsize(header_len))) fail(path, "truncated .npy header");

  std::string descr;
  bool fortran = false;
  RawTensor t;
  HeaderParser(path, header).parse(descr, fortran, t.shape);
  t.dtype = parse_descr(path, descr);

  const uint64_t avail = uint64_t(file_size) - prefix - header_len;
  const uint64_t es = dtype_size(t.dtype);
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d != 0 && n > avail / uint64_t(d)) {
      n = UINT64_MAX;
      break;
    }
    n *= uint64_t(d);
  }
  if (n == UINT64_MAX || n > avail / es || n * es != avail)
    fail(path, "data size " + std::to_string(avail) + " bytes does not match the header's shape and dtype " + descr);
  t.bytes.resize(size_t(n * es));
  if (!t.bytes.empty() && !f.read(reinterpret_cast<char*>(t.bytes.data()), std::streamsize(t.bytes.size())))
    fail(path, "truncated .npy data");
  if (fortran) t.bytes = fortran_to_c(t.bytes, t.shape, size_t(es));
  return t;
}

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& tmp) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(tmp + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_npy(const std::string& path, const RawTensor& t) {
  const char* descr = descr_of(path, t.dtype);
  for (int64_t d : t.shape)
    if (d < 0) fail(path, "negative dimension in shape");
  if (t.bytes.size() != size_t(t.numel()) * dtype_size(t.dtype))
    fail(path, "tensor holds " + std::to_string(t.bytes.size()) + " bytes, its shape needs " +
                   std::to_string(size_t(t.numel()) * dtype_size(t.dtype)));

  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape.size(); ++i) {
    header += std::to_string(t.shape[i]);
    if (t.shape.size() == 1 || i + 1 < t.shape.size()) header += ",";
    if (i + 1 < t.shape.size()) header += " ";
  }
  header += "), }";
  // Version 1.0 caps the header at 65535 bytes; version 2.0 lifts that for arrays with very many dimensions.
  int version = 1;
  size_t prefix = 10;
  size_t total = prefix + header.size() + 1;
  if (((total + 63) / 64) * 64 - prefix > 65535) {
    version = 2;
    prefix = 12;
    total = prefix + header.size() + 1;
  }
  // Pad with spaces so the data starts on a 64-byte boundary, as NumPy does.
  header.append(((total + 63) / 64) * 64 - total, ' ');
  header += '\n';

  std::string pre(kMagic, kMagicLen);
  pre += char(version);
  pre += char(0);
  const size_t hl = header.size();
  pre += char(hl & 0xff);
  pre += char((hl >> 8) & 0xff);
  if (version == 2) {
    pre += char((hl >> 16) & 0xff);
    pre += char((hl >> 24) & 0xff);
  }

  // Temp file in the same directory so rename() is atomic; random suffix so concurrent writers do not collide.
  std::random_device rd;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, std::string("cannot create temporary file: ") + std::strerror(errno));
  try {
    write_all(fd, pre.data(), pre.size(), tmp);
    write_all(fd, header.data(), header.size(), tmp);
    write_all(fd, t.bytes.data(), t.bytes.size(), tmp);
    if (::fsync(fd) != 0) throw Error(tmp + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(path, std::string("close failed: ") + std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(path, std::string("cannot rename temporary file into place: ") + std::strerror(e));
  }
}

}  // namespace wavtok
