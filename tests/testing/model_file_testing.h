// Helpers for tests that take .wtk model files apart (io/model_file.h): whole-file bytes, header fields, and the
// check that a damaged file is refused with its name and the problem in the message.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"
#include "models/model.h"

namespace wavtok::testing {

inline std::string read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_file_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// The little-endian u32 at byte `at` of a file's bytes (the header's version at 8, features at 12).
inline uint32_t u32_at(const std::string& bytes, size_t at) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + at, 4);
  return v;
}

// Model::load(path) must throw an Error whose message names the file and contains `what`.
inline void expect_model_refused(const std::string& path, const std::string& what) {
  try {
    Model::load(path);
    ADD_FAILURE() << path << " was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

}  // namespace wavtok::testing
