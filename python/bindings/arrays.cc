// NumPy arrays in and out: audio, codes and the buffers handed back to Python.
#include <cmath>
#include <limits>

#include "core/settings.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "python/bindings/bindings.h"

namespace wavtok::python {

void PyModel::apply_threads() const { set_num_threads(threads); }

namespace {

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

}  // namespace

py::array as_array(const py::object& obj, const char* what) {
  if (obj.is_none()) throw InputError(std::string(what) + ": None (give a NumPy array)");
  py::array a = py::array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw InputError(std::string(what) + ": cannot be read as an array (give a NumPy array)");
  }
  return a;
}

std::vector<float> mono_audio(const py::object& audio_in, int rate, int target_rate) {
  const py::array audio = as_array(audio_in, "audio");
  if (audio.dtype().kind() != 'f')
    throw InputError("audio: dtype " + std::string(py::str(audio.dtype())) +
                     ": give float32 or float64 samples (integer PCM: divide by its full scale, e.g. 32768)");
  if (audio.ndim() != 1 && audio.ndim() != 2)
    throw InputError("audio: shape " + shape_of(audio) + ": expected (samples,) or (channels, samples)");
  const int64_t channels = audio.ndim() == 2 ? audio.shape(0) : 1;
  const int64_t samples = audio.shape(audio.ndim() - 1);
  if (channels < 1 || channels > kMaxChannels)
    throw InputError("audio: shape " + shape_of(audio) + ": expected (channels, samples) with 1.." +
                     std::to_string(kMaxChannels) + " channels (transpose a (samples, channels) array)");
  if (samples < 1) throw InputError("audio: no samples");
  if (rate < 1 || rate > kMaxSampleRate)
    throw InputError("audio: sample rate " + std::to_string(rate) + " Hz out of range 1.." + std::to_string(kMaxSampleRate));
  // float32, C-contiguous (a copy only when the caller's array is another dtype or strided).
  auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(audio);
  if (!f) throw py::error_already_set();
  std::vector<float> mono;
  {
    py::gil_scoped_release nogil;
    mono.reserve(size_t(samples));
    try {
      append_mono(f.data(), samples, int(channels), 1, samples, mono, "audio");
      resample_to(mono, rate, target_rate, "audio");
    } catch (const Error& e) {
      throw InputError(e.what());
    }
  }
  return mono;
}

CodesIn codes_from_array(const py::object& codes_in, bool frames_may_be_zero) {
  const py::array codes = as_array(codes_in, "codes");
  const char kind = codes.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw InputError("codes: dtype " + std::string(py::str(codes.dtype())) + ": codes must be integers");
  const bool three = codes.ndim() == 3 && codes.shape(1) == 1;
  if (codes.ndim() != 2 && !three)
    throw InputError("codes: shape " + shape_of(codes) + ": expected (n_q, frames) or (n_q, 1, frames)");
  CodesIn c;
  const int64_t nq = codes.shape(0);
  c.frames = codes.shape(codes.ndim() - 1);
  if (nq < 1 || nq > 1024) throw InputError("codes: shape " + shape_of(codes) + ": n_q must be 1..1024");
  if (c.frames < 1 && !frames_may_be_zero) throw InputError("codes: no frames");
  c.n_q = int(nq);
  auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(codes);
  if (!a) throw py::error_already_set();
  const int64_t* p = a.data();
  c.codes.resize(size_t(nq * c.frames));
  for (size_t i = 0; i < c.codes.size(); ++i) {
    if (p[i] < 0 || p[i] > std::numeric_limits<int32_t>::max())
      throw InputError("codes: code " + std::to_string(p[i]) + " at index " + std::to_string(i) +
                       " is negative or too large for any codebook");
    c.codes[i] = int32_t(p[i]);
  }
  return c;
}

template <class T>
static py::array_t<T> owning_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* held = new std::vector<T>(std::move(v));
  py::capsule owner(held, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, held->data(), owner);
}

py::array_t<float> to_numpy(std::vector<float>&& v, std::vector<py::ssize_t> shape) {
  return owning_array(std::move(v), std::move(shape));
}

py::array_t<int64_t> codes_to_numpy(const std::vector<int32_t>& codes, int n_q, int64_t frames, bool frame_major) {
  std::vector<int64_t> out(size_t(n_q) * size_t(frames));
  for (int q = 0; q < n_q; ++q)
    for (int64_t f = 0; f < frames; ++f)
      out[size_t(q) * frames + f] = frame_major ? codes[size_t(f) * n_q + q] : codes[size_t(q) * frames + f];
  return owning_array(std::move(out), {py::ssize_t(n_q), py::ssize_t(frames)});
}

}  // namespace wavtok::python
