// Output files that appear only when complete: write to a temporary file beside the target, then
// rename over it. On any failure (exception before commit) the temporary file is removed.
#pragma once

#include <cstdio>
#include <string>

namespace wavtok {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  std::FILE* file() { return f_; }
  const std::string& temp_path() const { return tmp_; }
  void commit();  // flush, close, rename; throws on error

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool done_ = false;
};

// True when both paths name the same existing file (same device and inode).
bool same_existing_file(const std::string& a, const std::string& b);

}  // namespace wavtok
