// Internal header of the Python extension wavtok._wavtok (python/wavtok): what its binding files share.
//
// The module is put together in module.cc from one bind_* function per file; another file adds to it by defining
// its own `void bind_NAME(pybind11::module_&)`, declaring it below and calling it from module.cc (CMake compiles
// every python/bindings/*.cc into the module).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/model.h"

namespace wavtok::python {

namespace py = pybind11;

// Bad arguments from the caller (shape, dtype, NaN, a value out of range). Becomes wavtok.InputError, a subclass
// of both wavtok.Error and ValueError; every other C++ exception becomes wavtok.Error (a RuntimeError), with the
// message unchanged (std::bad_alloc stays MemoryError).
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A loaded model as Python sees it (wavtok.Model). The Model is immutable and shared with the sessions made from
// it; `threads` is this object's thread setting, applied on the calling thread before each computation.
struct PyModel {
  std::shared_ptr<const Model> model;
  std::string path;  // empty: the built-in default model
  int threads = 0;   // 0: OpenMP's default (OMP_NUM_THREADS, else every core)
  void apply_threads() const;
};

// Any array-like (NumPy array, list, ...) as an array; throws InputError naming `what` otherwise.
py::array as_array(const py::object& obj, const char* what);
// Audio from Python as mono float32 at `target_rate`: `audio` is a float array (samples,) or (channels, samples),
// channels averaged like `wavtok encode` does for files, then resampled from `rate` (dsp/audio_io.h). Throws
// InputError for another dtype or shape, an empty array, a bad rate or a NaN/Inf sample. Call with the GIL held;
// it releases it for the averaging and resampling.
std::vector<float> mono_audio(const py::object& audio_in, int rate, int target_rate);
// Codes from Python (any integer dtype) as int32, shape (n_q, frames) or (n_q, 1, frames); throws InputError for
// another dtype or shape, or a value outside int32. `frames_may_be_zero` for streaming pushes.
struct CodesIn {
  int n_q = 0;
  int64_t frames = 0;
  std::vector<int32_t> codes;  // [n_q, frames]
};
CodesIn codes_from_array(const py::object& codes_in, bool frames_may_be_zero);

// Arrays handed to Python own the vector's buffer (moved, not copied).
py::array_t<float> to_numpy(std::vector<float>&& v, std::vector<py::ssize_t> shape);
py::array_t<int64_t> codes_to_numpy(const std::vector<int32_t>& codes, int n_q, int64_t frames, bool frame_major);

// The parts of the module, in the order module.cc calls them.
void bind_errors(py::module_& m);     // errors.cc: wavtok.Error, wavtok.InputError and the exception translator
void bind_settings(py::module_& m);   // model.cc: precision, version
void bind_model(py::module_& m);      // model.cc: wavtok.Model
void bind_streaming(py::module_& m);  // streaming.cc: wavtok.Encoder, wavtok.Decoder
void bind_batch(py::module_& m);      // batch.cc: the corpus tokenizer of `wavtok batch` (wavtok.corpus, wavtok.dask)
// Further parts are declared here and called from module.cc.

}  // namespace wavtok::python
