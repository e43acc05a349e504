// libFuzzer target: load_torch_checkpoint (zip container, pickle, tensor materialisation).
// An input that starts like a zip ("PK") is used as the checkpoint file itself. Any other input is taken as
// data.pkl and wrapped in a stored zip the way torch.save lays one out, with storage entries "0".."15" of
// 4096 bytes each, so fuzzed pickles reach the walker and the tensor gather code instead of stopping at the
// zip's checksums. Malformed input must end in wavtok::Error.
#include <zip.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/torch_checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void add(zip_t* z, const std::string& name, const void* data, size_t size) {
  zip_source_t* s = zip_source_buffer(z, data, size, 0);
  if (!s) std::abort();
  const zip_int64_t i = zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE);
  if (i < 0) {
    zip_source_free(s);
    std::abort();
  }
  zip_set_file_compression(z, zip_uint64_t(i), ZIP_CM_STORE, 0);
}

std::string wrap_pickle(const uint8_t* pkl, size_t size) {
  static std::vector<uint8_t> storage = [] {
    std::vector<uint8_t> s(4096);
    for (size_t i = 0; i < s.size(); ++i) s[i] = uint8_t(i * 37 + 11);  // finite float/half patterns mostly
    return s;
  }();
  const std::string path = wavtok::fuzz::scratch_dir() + "/wavtok-fuzz-" + std::to_string(::getpid()) + "-ck.zip";
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) std::abort();
  add(z, "archive/data.pkl", pkl, size);
  add(z, "archive/byteorder", "little", 6);
  for (int k = 0; k < 16; ++k) add(z, "archive/data/" + std::to_string(k), storage.data(), storage.size());
  if (zip_close(z) != 0) std::abort();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool is_zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
  const std::string path = is_zip ? wavtok::fuzz::scratch_file("ck.pt", data, size) : wrap_pickle(data, size);
  try {
    wavtok::TorchCheckpoint ck = wavtok::load_torch_checkpoint(path);
    // Every tensor must hold exactly numel * element size bytes.
    for (const auto& [name, t] : ck.tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      if (t.bytes.size() != size_t(n) * wavtok::dtype_size(t.dtype)) std::abort();
    }
    auto sd = ck.take_state_dict();
    (void)sd;
  } catch (const wavtok::Error&) {}
  return 0;
}
