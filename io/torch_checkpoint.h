// Reader for PyTorch checkpoints as `torch.save` writes them (zip container + pickle protocols 2-5).
// Handles Lightning training checkpoints and plain state_dict files (EnCodec releases) alike.
// Walked: dicts (incl. OrderedDict), lists, tuples and the items of dict/list subclasses. Instances of other classes
// (argparse.Namespace, pathlib paths, numpy scalars, custom classes) are skipped, with any tensors they hold.
// Non-contiguous tensors are materialised row-major; each storage entry is read once however many tensors share it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/raw_tensor.h"

namespace wavtok {

// Bounds on what a checkpoint may ask for, so a hostile file cannot exhaust memory or stack.
struct CheckpointLimits {
  int64_t max_pickle_bytes = 64ll << 20;  // data.pkl size
  int max_nesting_depth = 256;            // nested containers in the pickle
  int64_t max_memo_entries = 10'000'000;
  int64_t max_objects = 4'000'000;  // containers/strings created, and values on the stack, each
  int64_t max_tensors = 1'000'000;
  int64_t max_tensor_elements = 1ll << 32;  // per tensor, also checked against storage size
};

struct TorchCheckpoint {
  // Every tensor reachable from the pickle root, keyed by the dotted path of dict keys / list indices,
  // e.g. "state_dict.backbone.embed.weight" or "optimizer_states.0.state.3.exp_avg".
  std::map<std::string, RawTensor> tensors;
  // Scalars (int, float, bool, str, None) reachable from the root, same dotted keys, printed as Python's str()
  // prints them: "12000", "0.0002", "True", "None"; ints of any width in decimal.
  std::map<std::string, std::string> scalars;

  // The model's state dict: tensors under "state_dict." when present (Lightning), otherwise the
  // top-level ones (plain state_dict files); the prefix is removed from the names.
  std::map<std::string, RawTensor> state_dict() const;
  // The same, moving the tensors out of `tensors` instead of copying them (for large checkpoints).
  std::map<std::string, RawTensor> take_state_dict();

  // Names of the tensors that are direct children of the pickle root (a plain state_dict's entries).
  std::vector<std::string> root_tensor_names;
};

// Throws wavtok::Error naming `path` and the problem on any malformed, truncated or unsupported input.
TorchCheckpoint load_torch_checkpoint(const std::string& path, const CheckpointLimits& limits = {});

}  // namespace wavtok
