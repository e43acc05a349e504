// Helpers for tests that take .wtk model files apart (io/model_file.h): whole-file bytes, header fields, and the
// check that a damaged file is refused with its name and the problem in the message; the weight error of int8 layers
// alone (with_int8_weights_float_acts).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"
#include "core/util.h"
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

// The weights with every int8 Conv1d/Linear layer's weight replaced by its s8 codes times weight_scale (the values
// the int8 kernels multiply by) and its activation quantization removed: a model of it has the quantized layers'
// weight error alone (int8 LSTMs, whose weights are named otherwise, stay as they are).
inline WeightMap with_int8_weights_float_acts(const WeightMap& q) {
  WeightMap w = q;
  std::vector<std::string> layers;
  for (const auto& [k, t] : q.all())
    if (k.size() > 10 && k.compare(k.size() - 10, 10, ".act_quant") == 0) layers.push_back(k.substr(0, k.size() - 10));
  for (const std::string& n : layers) {
    if (!q.has(n + ".weight")) continue;
    Tensor wt = q.get(n + ".weight");
    const Tensor& sc = q.get(n + ".weight_scale");
    const std::vector<float> scale(sc.data(), sc.data() + sc.numel());
    const std::vector<int8_t> codes = int8_weight_codes(wt.data(), wt.numel(), scale);
    const int64_t per = wt.numel() / wt.dim(0);
    for (int64_t i = 0; i < wt.numel(); ++i) wt[i] = float(codes[size_t(i)]) * scale[size_t(i / per)];
    w.set(n + ".weight", std::move(wt));
    for (const char* suf : {".act_quant", ".act_dynamic", ".act_group", ".weight_scale"}) w.all().erase(n + suf);
  }
  return w;
}

}  // namespace wavtok::testing
