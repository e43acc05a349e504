// The pickle virtual machine behind load_torch_checkpoint: runs data.pkl into a flat object graph.
// Only what torch.save emits is understood (protocol 2-5 binary opcodes, torch's tensor/storage rebuild
// functions, OrderedDict); any other class becomes an opaque object. Nothing here touches storage bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/raw_tensor.h"
#include "io/torch_checkpoint.h"

namespace wavtok::torch_pickle {

// Scalars live inline; strings and containers live in PickleGraph::objs and are referenced by index,
// so shared and even cyclic structures need no reference counting or recursive destruction.
enum class Kind : uint8_t { None, Bool, Int, Float, Ref };
struct Value {
  Kind kind = Kind::None;
  union {
    int64_t i = 0;  // Bool (0/1) and Int
    double f;       // Float
    uint32_t ref;   // Ref: index into PickleGraph::objs
  };
};

enum class ObjKind : uint8_t {
  Str,      // text (UTF-8 as stored)
  Bytes,    // binary payload (not kept)
  BigInt,   // integer wider than 64 bits; text holds its decimal form
  List,     // items
  Tuple,    // items
  Dict,     // kv: key, value, key, value, ...
  Set,      // items (unordered; never walked)
  Global,   // text = "module.name"
  Object,   // instance of a class we do not model; text = class name; items/kv collect APPEND/SETITEM targets
  Storage,  // index into PickleGraph::storages
  Tensor,   // index into PickleGraph::tensors
};

struct Obj {
  ObjKind kind;
  std::string text;
  std::vector<Value> items;
  std::vector<Value> kv;
  int64_t index = -1;
};

struct StorageRef {
  std::string key;        // entry name under <archive>/data/
  std::string type_name;  // e.g. "torch.FloatStorage"
  DType dtype = DType::U8;
  int64_t numel = 0;  // elements of dtype the storage holds
};

struct TensorRef {
  uint32_t storage = 0;      // index into PickleGraph::storages
  DType dtype = DType::F32;  // the storage's, or the one _rebuild_tensor_v3 names
  int64_t offset = 0;        // in elements
  std::vector<int64_t> size, stride;
  int64_t numel = 0;
};

struct PickleGraph {
  std::vector<Obj> objs;
  std::vector<StorageRef> storages;
  std::vector<TensorRef> tensors;
  Value root;
};

// `where` names the input in error messages (e.g. "model.ckpt: archive/data.pkl").
PickleGraph run_pickle(std::string_view data, const std::string& where, const CheckpointLimits& limits);

// Python's repr() of a float ("0.0002", "1e-05", "3.0"), so scalars read back as Python printed them.
std::string python_float_repr(double v);

}  // namespace wavtok::torch_pickle
