// Shared oneDNN engine/stream and a per-shape primitive cache.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/settings.h"

namespace wavtok {

using dtag = dnnl::memory::format_tag;
using ddt = dnnl::memory::data_type;

dnnl::engine& cpu_engine();
// One stream per thread: sessions on different threads never share a stream.
dnnl::stream& cpu_stream();
// Precision, threads and the count of primitives made: core/settings.h.

// Every primitive is created with a user-managed scratchpad (attr below) and run through run_primitive(),
// which hands it a per-thread scratchpad: oneDNN's library-managed scratchpad is per primitive and not safe
// when sessions on several threads execute the same primitive at once.
dnnl::primitive_attr scratchpad_attr();
// `args` is a plain list (not the C++ API's unordered_map): a layer run in many pieces calls this thousands of
// times per second of audio, and the map's node allocations showed up in profiles.
void run_primitive(const dnnl::primitive& p, std::initializer_list<std::pair<int, dnnl::memory>> args);

inline dnnl::memory wrap(const dnnl::memory::desc& md, const float* p) {
  return dnnl::memory(md, cpu_engine(), const_cast<float*>(p));
}

void note_shape_created();  // counted by shapes_created() (core/settings.h)

// Primitives are immutable and safe to execute concurrently, so layers create them once per input
// shape (key) and share them between sessions and threads. The cache keeps the `capacity` most recently used
// shapes: a server decoding inputs of ever new lengths, or a stream whose window grows, must not grow without bound.
template <class Entry>
class ShapeCache {
 public:
  explicit ShapeCache(size_t capacity = 48) : cap_(capacity) {}
  template <class Make>
  std::shared_ptr<const Entry> get(int64_t key, Make&& make) const {
    std::lock_guard<std::mutex> lock(*mu_);
    auto it = map_->find(key);
    if (it != map_->end()) {
      it->second.last_use = ++*tick_;
      return it->second.entry;
    }
    if (map_->size() >= cap_) {  // evict the least recently used shape (users still holding it keep it alive)
      auto lru = map_->begin();
      for (auto j = map_->begin(); j != map_->end(); ++j)
        if (j->second.last_use < lru->second.last_use) lru = j;
      map_->erase(lru);
    }
    auto e = std::make_shared<const Entry>(make());
    note_shape_created();
    map_->emplace(key, Slot{e, ++*tick_});
    return e;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(*mu_);
    map_->clear();
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(*mu_);
    return map_->size();
  }

 private:
  struct Slot {
    std::shared_ptr<const Entry> entry;
    uint64_t last_use = 0;
  };
  size_t cap_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<uint64_t> tick_ = std::make_unique<uint64_t>(0);
  std::unique_ptr<std::map<int64_t, Slot>> map_ = std::make_unique<std::map<int64_t, Slot>>();
};

// One weight tensor reordered into each layout that a primitive asks for. The layout oneDNN picks rarely depends
// on the input length, so the primitives of every shape share one copy of the weights instead of each holding its
// own (at the released WavTokenizer dims a copy of the decoder is about 200 MB). dnnl::memory is a shared handle.
class WeightCache {
 public:
  template <class Make>
  dnnl::memory get(const dnnl::memory::desc& want, Make&& make) const {
    std::lock_guard<std::mutex> lock(*mu_);
    for (const auto& [md, mem] : *list_)
      if (md == want) return mem;
    dnnl::memory m = make();
    list_->emplace_back(want, m);
    return m;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(*mu_);
    list_->clear();
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(*mu_);
    return list_->size();
  }

 private:
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<std::vector<std::pair<dnnl::memory::desc, dnnl::memory>>> list_ =
      std::make_unique<std::vector<std::pair<dnnl::memory::desc, dnnl::memory>>>();
};

}  // namespace wavtok
