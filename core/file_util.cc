#include "core/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace wavtok {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw Error(path_ + ": cannot create output file: " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (!done_) {
    if (f_) std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::commit() {
  const bool write_ok = std::fflush(f_) == 0 && !std::ferror(f_);
  const bool close_ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!write_ok || !close_ok) throw Error(path_ + ": write failed: " + std::strerror(errno));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename output into place: " + std::strerror(errno));
  done_ = true;
}

bool same_existing_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace wavtok
