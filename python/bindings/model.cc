// wavtok.Model: one-shot encoding and decoding, latents, and the process-wide settings.
#include <pybind11/stl.h>

#include <optional>

#include "codec/default_model.h"
#include "core/settings.h"
#include "core/error.h"
#include "codec/streaming.h"
#include "io/token_file.h"
#include "codec/user_input.h"
#include "python/bindings/bindings.h"

namespace wavtok::python {

namespace {

int n_q_arg(const Model& m, std::optional<int> n_q, std::optional<double> bandwidth) {
  try {
    return select_n_q(m, bandwidth.value_or(0.0), n_q.value_or(0));
  } catch (const Error& e) {
    throw InputError(e.what());
  }
}

Tensor latents_arg(const py::object& latents_in, const Model& m) {
  const py::array latents = as_array(latents_in, "latents");
  if (latents.dtype().kind() != 'f')
    throw InputError("latents: dtype " + std::string(py::str(latents.dtype())) + ": latents must be float");
  auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(latents);
  if (!f) throw py::error_already_set();
  std::vector<int64_t> shape(f.shape(), f.shape() + f.ndim());
  try {
    return latents_from_array(shape, std::vector<float>(f.data(), f.data() + f.size()), m, "latents");
  } catch (const Error& e) {
    throw InputError(e.what());
  }
}

Tokens tokens_arg(const py::object& codes, const Model& m) {
  CodesIn c = codes_from_array(codes, false);
  TokenFile tf;  // no fingerprint or rate: only the codes are checked against the model
  tf.tokens = Tokens{c.n_q, c.frames, std::move(c.codes)};
  try {
    check_tokens_for_model(tf, m, "codes");
  } catch (const Error& e) {
    throw InputError(e.what());
  }
  return std::move(tf.tokens);
}

py::array_t<float> latents_out(Tensor&& t) {
  const auto d0 = py::ssize_t(t.dim(0)), d1 = py::ssize_t(t.dim(1));
  return to_numpy(std::vector<float>(t.data(), t.data() + t.numel()), {d0, d1});
}

std::shared_ptr<const Model> load(const std::optional<std::string>& path, const std::optional<std::string>& config) {
  py::gil_scoped_release nogil;
  if (!path) {
    if (config) throw InputError("config is for a checkpoint given as path; the built-in model needs none");
    return load_embedded_default_model();
  }
  LoadOptions o;
  o.config_path = config.value_or("");
  return Model::load(*path, o);
}

}  // namespace

void bind_settings(py::module_& m) {
  m.attr("__version__") = WAVTOK_VERSION;
  m.def(
      "set_precision",
      [](const std::string& p) {
        if (p == "f32")
          set_precision(Precision::F32);
        else if (p == "bf16")
          set_precision(Precision::BF16);  // throws on a CPU without native bf16
        else if (p == "f64")
          set_precision(Precision::F64);
        else
          throw InputError("precision '" + p + "': use \"f32\", \"bf16\" or \"f64\"");
      },
      py::arg("precision"),
      "Arithmetic of the matrix layers for every model of the process: \"f32\" (default), \"bf16\" (the\n"
      "decoder's layers with bfloat16 inputs, float32 accumulation; needs AVX512-BF16 or AMX, else raises\n"
      "wavtok.Error; the encoder stays float32, so tokens do not change) or \"f64\" (the encoder's convolutions\n"
      "accumulate in float64: a residual VQ's deep levels closest to upstream's codes, at a slower encode).\n"
      "Set it before computing, not while other threads compute.");
  m.def(
      "get_precision",
      []() {
        const Precision p = get_precision();
        return p == Precision::BF16 ? "bf16" : p == Precision::F64 ? "f64" : "f32";
      },
      "The precision set with set_precision: \"f32\", \"bf16\" or \"f64\".");
  m.def("bf16_supported", &bf16_supported, "True when this CPU runs bf16 natively (set_precision(\"bf16\") works).");
}

void bind_model(py::module_& m) {
  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", R"(A codec model: audio -> codes -> audio.

Model(path=None, config=None, threads=0)

path: a .wtk model file or a PyTorch checkpoint (WavTokenizer .ckpt with config.yaml beside it or given as
config, or an EnCodec .th state dict). None loads the default model built into the library (WavTokenizer
architecture, 24 kHz, 75 frames/s, one codebook of 1024).
threads: OpenMP threads for this model's computations on the calling thread (0 leaves the thread's setting:
OMP_NUM_THREADS, else every core).

A Model is immutable and may be used from several Python threads at once; the GIL is released while it computes.)")
      .def(py::init([](std::optional<std::string> path, std::optional<std::string> config, int threads) {
             if (threads < 0) throw InputError("threads " + std::to_string(threads) + ": must be >= 0");
             auto pm = std::make_shared<PyModel>();
             pm->model = load(path, config);
             pm->path = path.value_or("");
             pm->threads = threads;
             return pm;
           }),
           py::arg("path") = py::none(), py::arg("config") = py::none(), py::arg("threads") = 0)
      .def_property_readonly("sample_rate", [](const PyModel& p) { return p.model->sample_rate(); },
                             "Sample rate (Hz) of the model's audio: decode() returns audio at this rate.")
      .def_property_readonly("hop", [](const PyModel& p) { return p.model->hop(); }, "Samples per frame.")
      .def_property_readonly("frame_rate", [](const PyModel& p) { return p.model->config().frame_rate(); },
                             "Frames (tokens per codebook) per second.")
      .def_property_readonly("n_q", [](const PyModel& p) { return p.model->max_n_q(); },
                             "Codebooks the model has (encode() uses all unless given n_q or bandwidth).")
      .def_property_readonly("codebook_size", [](const PyModel& p) { return p.model->config().quantizer.bins; },
                             "Entries per codebook: codes are in 0..codebook_size-1.")
      .def_property_readonly("latent_dim", [](const PyModel& p) { return p.model->latent_dim(); },
                             "Channels of the latents (encode_latents, decode_latents).")
      .def_property_readonly("architecture", [](const PyModel& p) { return std::string(arch_name(p.model->config().arch)); },
                             "\"wavtokenizer\" or \"encodec\".")
      .def_property_readonly("fingerprint", [](const PyModel& p) { return p.model->fingerprint(); },
                             "64-bit fingerprint of the weights (as in .wtt token files and `wavtok info`).")
      .def_property_readonly("parameter_count", [](const PyModel& p) { return p.model->parameter_count(); },
                             "Number of parameters.")
      .def_property_readonly("path", [](const PyModel& p) -> std::optional<std::string> {
             if (p.path.empty()) return std::nullopt;
             return p.path;
           }, "The file the model came from; None for the built-in default model.")
      .def_property_readonly("bandwidths", [](const PyModel& p) { return p.model->config().bandwidths; },
                             "Bandwidths (kbps) the model was trained for (EnCodec: the choices for encode's bandwidth).")
      .def_property_readonly("streams_exactly", [](const PyModel& p) { return streams_exactly(*p.model); },
                             "True when streaming decoding equals one-shot decoding (EnCodec-format models).")
      .def_property("threads", [](const PyModel& p) { return p.threads; },
                    [](PyModel& p, int n) {
                      if (n < 0) throw InputError("threads " + std::to_string(n) + ": must be >= 0");
                      p.threads = n;
                    },
                    "OpenMP threads for this model's computations (0: leave the calling thread's setting).")
      .def("kbps", [](const PyModel& p, int n_q) {
             if (n_q < 1 || n_q > p.model->max_n_q())
               throw InputError("n_q " + std::to_string(n_q) + ": this model has 1.." + std::to_string(p.model->max_n_q()));
             return p.model->config().kbps(n_q);
           }, py::arg("n_q"), "Bitrate in kbps of n_q codebooks.")
      .def("n_q_for", [](const PyModel& p, std::optional<int> n_q, std::optional<double> bandwidth) {
             return n_q_arg(*p.model, n_q, bandwidth);
           }, py::arg("n_q") = py::none(), py::arg("bandwidth") = py::none(),
           "The number of codebooks encode() uses for these arguments (a bandwidth in kbps selects it for\n"
           "EnCodec-format models; both None: all). Raises InputError for an unavailable choice.")
      .def("encode", [](const PyModel& p, const py::object& audio, int sample_rate, std::optional<int> n_q,
                        std::optional<double> bandwidth) {
             const Model& m = *p.model;
             const int nq = n_q_arg(m, n_q, bandwidth);
             std::vector<float> pcm = mono_audio(audio, sample_rate, m.sample_rate());
             Tokens t;
             {
               py::gil_scoped_release nogil;
               p.apply_threads();
               t = m.encode(pcm.data(), int64_t(pcm.size()), nq);
             }
             return codes_to_numpy(t.codes, t.n_q, t.frames, false);
           }, py::arg("audio"), py::arg("sample_rate"), py::kw_only(), py::arg("n_q") = py::none(),
           py::arg("bandwidth") = py::none(),
           R"(Audio to codes, an int64 array (n_q, frames).

audio: float32/float64, (samples,) or (channels, samples); channels are averaged and the audio is resampled
from sample_rate to the model's rate, as `wavtok encode` does for files (so the codes equal the CLI's).
n_q / bandwidth (kbps): how many codebooks (default all). One frame per hop samples at the model's rate.)")
      .def("decode", [](const PyModel& p, const py::object& codes, int bandwidth_id) {
             const Model& m = *p.model;
             Tokens t = tokens_arg(codes, m);
             std::vector<float> audio;
             {
               py::gil_scoped_release nogil;
               p.apply_threads();
               audio = m.decode(t, bandwidth_id);
             }
             const auto n = py::ssize_t(audio.size());
             return to_numpy(std::move(audio), {n});
           }, py::arg("codes"), py::kw_only(), py::arg("bandwidth_id") = 0,
           R"(Codes (n_q, frames) or (n_q, 1, frames), any integer dtype, to float32 audio at sample_rate,
frames * hop samples. bandwidth_id: WavTokenizer's AdaLayerNorm id (0 unless the model was trained with several).)")
      .def("encode_latents", [](const PyModel& p, const py::object& audio, int sample_rate) {
             const Model& m = *p.model;
             std::vector<float> pcm = mono_audio(audio, sample_rate, m.sample_rate());
             Tensor lat;
             {
               py::gil_scoped_release nogil;
               p.apply_threads();
               lat = m.encode_latents(pcm.data(), int64_t(pcm.size()));
             }
             return latents_out(std::move(lat));
           }, py::arg("audio"), py::arg("sample_rate"),
           "Audio (as for encode) to the encoder's continuous latents before quantization: float32 (latent_dim, frames).")
      .def("quantize", [](const PyModel& p, const py::object& latents, std::optional<int> n_q,
                          std::optional<double> bandwidth) {
             const Model& m = *p.model;
             const int nq = n_q_arg(m, n_q, bandwidth);
             Tensor lat = latents_arg(latents, m);
             Tokens t;
             {
               py::gil_scoped_release nogil;
               p.apply_threads();
               t = m.quantize(lat, nq);
             }
             return codes_to_numpy(t.codes, t.n_q, t.frames, false);
           }, py::arg("latents"), py::kw_only(), py::arg("n_q") = py::none(), py::arg("bandwidth") = py::none(),
           "Latents (latent_dim, frames) or (1, latent_dim, frames) to codes (n_q, frames): nearest codes, residual\n"
           "by residual. encode(a) equals quantize(encode_latents(a)).")
      .def("dequantize", [](const PyModel& p, const py::object& codes) {
             const Model& m = *p.model;
             Tokens t = tokens_arg(codes, m);
             Tensor lat;
             {
               py::gil_scoped_release nogil;
               lat = m.dequantize(t);
             }
             return latents_out(std::move(lat));
           }, py::arg("codes"),
           "Codes to the quantized latents the decoder consumes: float32 (latent_dim, frames), the sum of the codewords.")
      .def("decode_latents", [](const PyModel& p, const py::object& latents, int bandwidth_id) {
             const Model& m = *p.model;
             Tensor lat = latents_arg(latents, m);
             std::vector<float> audio;
             {
               py::gil_scoped_release nogil;
               p.apply_threads();
               audio = m.decode_latents(lat, bandwidth_id);
             }
             const auto n = py::ssize_t(audio.size());
             return to_numpy(std::move(audio), {n});
           }, py::arg("latents"), py::kw_only(), py::arg("bandwidth_id") = 0,
           "Latents (latent_dim, frames) or (1, latent_dim, frames) (e.g. a generative model's output) to float32\n"
           "audio at sample_rate, frames * hop samples.")
      .def("__repr__", [](const PyModel& p) {
             const Model& m = *p.model;
             return "wavtok.Model(" + (p.path.empty() ? std::string("built-in default") : "'" + p.path + "'") + ": " +
                    std::string(arch_name(m.config().arch)) + ", " + std::to_string(m.sample_rate()) + " Hz, hop " + std::to_string(m.hop()) +
                    ", " + std::to_string(m.max_n_q()) + " x " + std::to_string(m.config().quantizer.bins) + " codes)";
           });
}

}  // namespace wavtok::python
