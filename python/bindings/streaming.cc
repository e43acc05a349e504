// wavtok.Encoder / wavtok.Decoder: streaming sessions over codec/streaming.h, with the C API's semantics
// (codec/wavtok.h): push returns what became final, flush ends the stream and readies the session for the next.
#include <pybind11/stl.h>

#include <mutex>
#include <optional>

#include "core/error.h"
#include "codec/streaming.h"
#include "codec/user_input.h"
#include "python/bindings/bindings.h"

namespace wavtok::python {

namespace {

StreamParams params_arg(const std::string& preset, std::optional<int> block, std::optional<int> left,
                        std::optional<int> lookahead) {
  StreamParams p;
  {
    py::gil_scoped_release nogil;
    p = stream_preset(preset);  // a name or a YAML file; throws naming it
  }
  auto set = [](int& field, std::optional<int> v, const char* name, int lo) {
    if (!v) return;
    if (*v < lo) throw InputError(std::string(name) + " " + std::to_string(*v) + ": must be >= " + std::to_string(lo));
    field = *v;
  };
  set(p.block_frames, block, "block_frames", 1);
  set(p.left_frames, left, "left_frames", 0);
  set(p.lookahead_frames, lookahead, "lookahead_frames", 0);
  return p;
}

int rate_arg(std::optional<int> rate, const Model& m, const char* name) {
  if (!rate) return m.sample_rate();
  if (*rate < 1) throw InputError(std::string(name) + " " + std::to_string(*rate) + ": must be positive");
  return *rate;
}

// One session per object; the lock keeps two Python threads from pushing into it at once (the GIL is released
// while it computes).
struct PyEncoder {
  std::shared_ptr<PyModel> model;
  StreamingEncoder session;
  int rate;
  std::mutex mu;
};

struct PyDecoder {
  std::shared_ptr<PyModel> model;
  StreamingDecoder session;
  int rate;
  std::mutex mu;
};

}  // namespace

void bind_streaming(py::module_& m) {
  py::class_<PyEncoder>(m, "Encoder", R"(A streaming encoder session: audio in pieces of any size, codes out as soon as they are final.

Encoder(model, preset="default", *, n_q=None, bandwidth=None, sample_rate=None)

The codes of a whole stream equal model.encode() of the whole signal. sample_rate: the rate of the audio pushed
(default the model's); another rate is resampled as it streams (libsoxr, as files are), which holds back a few
milliseconds (input_delay_ms). preset: "low-latency", "default", "high-fidelity" or a YAML file (the decoder's
window; an encoder uses only n_q). Sessions share the model and may run on different threads.)")
      .def(py::init([](std::shared_ptr<PyModel> model, const std::string& preset, std::optional<int> n_q,
                       std::optional<double> bandwidth, std::optional<int> sample_rate) {
             if (!model) throw InputError("Encoder: model is None");
             StreamParams p = params_arg(preset, std::nullopt, std::nullopt, std::nullopt);
             if (n_q || bandwidth) {
               try {
                 p.n_q = select_n_q(*model->model, bandwidth.value_or(0.0), n_q.value_or(0));
               } catch (const Error& e) {
                 throw InputError(e.what());
               }
             }
             const int rate = rate_arg(sample_rate, *model->model, "sample_rate");
             auto e = std::unique_ptr<PyEncoder>(new PyEncoder{model, StreamingEncoder(model->model, p), rate, {}});
             e->session.set_input_rate(rate);
             return e;
           }),
           py::arg("model"), py::arg("preset") = "default", py::kw_only(), py::arg("n_q") = py::none(),
           py::arg("bandwidth") = py::none(), py::arg("sample_rate") = py::none())
      .def("push", [](PyEncoder& e, const py::object& audio) {
             if (py::isinstance<py::array>(audio) && py::array(audio).size() == 0) return codes_to_numpy({}, e.session.n_q(), 0, true);
             // Channels averaged here; the rate is the session's (resampled as it streams).
             std::vector<float> pcm = mono_audio(audio, e.rate, e.rate);
             std::vector<int32_t> codes;
             int64_t frames = 0;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(e.mu);
               e.model->apply_threads();
               frames = e.session.push(pcm.data(), int64_t(pcm.size()), codes);
             }
             return codes_to_numpy(codes, e.session.n_q(), frames, true);
           }, py::arg("audio"),
           "Feeds audio (float, (samples,) or (channels, samples), at the session's sample_rate). Returns the codes that\n"
           "became final, int64 (n_q, new_frames) (often zero frames). Audio with NaN/Inf raises InputError and\n"
           "leaves the stream as it was.")
      .def("flush", [](PyEncoder& e) {
             std::vector<int32_t> codes;
             int64_t frames = 0;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(e.mu);
               e.model->apply_threads();
               frames = e.session.flush(codes);
             }
             return codes_to_numpy(codes, e.session.n_q(), frames, true);
           }, "Ends the stream: returns the remaining codes (n_q, frames); the session is ready for a new stream.")
      .def_property_readonly("n_q", [](const PyEncoder& e) { return e.session.n_q(); }, "Codes per frame.")
      .def_property_readonly("sample_rate", [](const PyEncoder& e) { return e.rate; }, "Rate of the audio pushed (Hz).")
      .def_property_readonly("frames_emitted", [](const PyEncoder& e) { return e.session.frames_emitted(); },
                             "Frames returned so far in this stream.")
      .def_property_readonly("input_delay_ms", [](const PyEncoder& e) { return e.session.input_delay_ms(); },
                             "Audio the resampler holds back now (ms; 0 at the model's rate).");

  py::class_<PyDecoder>(m, "Decoder", R"(A streaming decoder session: codes in, audio out as soon as it is final.

Decoder(model, preset="default", *, sample_rate=None, block_frames=None, left_frames=None, lookahead_frames=None,
        bandwidth_id=0)

EnCodec-format models decode exactly (the audio equals model.decode() of the whole stream). WavTokenizer decodes
windows of left_frames past + block_frames + lookahead_frames future frames and keeps the block (latency: block +
lookahead frames; the shipped default model's backbone is local, so its streams decode like one-shot once the
lookahead covers its receptive field). preset: "low-latency", "default", "high-fidelity" or a YAML file; the
keyword arguments override its fields. sample_rate: the rate of the audio returned (default the model's).)")
      .def(py::init([](std::shared_ptr<PyModel> model, const std::string& preset, std::optional<int> sample_rate,
                       std::optional<int> block, std::optional<int> left, std::optional<int> lookahead,
                       int bandwidth_id) {
             if (!model) throw InputError("Decoder: model is None");
             StreamParams p = params_arg(preset, block, left, lookahead);
             p.bandwidth_id = bandwidth_id;
             const int rate = rate_arg(sample_rate, *model->model, "sample_rate");
             auto d = std::unique_ptr<PyDecoder>(new PyDecoder{model, StreamingDecoder(model->model, p), rate, {}});
             d->session.set_output_rate(rate);
             return d;
           }),
           py::arg("model"), py::arg("preset") = "default", py::kw_only(), py::arg("sample_rate") = py::none(),
           py::arg("block_frames") = py::none(), py::arg("left_frames") = py::none(),
           py::arg("lookahead_frames") = py::none(), py::arg("bandwidth_id") = 0)
      .def("push", [](PyDecoder& d, const py::object& codes) {
             CodesIn c = codes_from_array(codes, true);
             // frame-major for the session
             std::vector<int32_t> fm(c.codes.size());
             for (int q = 0; q < c.n_q; ++q)
               for (int64_t f = 0; f < c.frames; ++f) fm[size_t(f) * c.n_q + q] = c.codes[size_t(q) * c.frames + f];
             std::vector<float> audio;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(d.mu);
               d.model->apply_threads();
               d.session.push(fm.data(), c.frames, c.n_q, audio);
             }
             const auto n = py::ssize_t(audio.size());
             return to_numpy(std::move(audio), {n});
           }, py::arg("codes"),
           "Feeds codes (n_q, frames), any integer dtype (n_q may change between pushes for EnCodec-format models).\n"
           "Returns the audio that became final, float32 (samples,). A code outside the codebook raises wavtok.Error\n"
           "and leaves the stream as it was.")
      .def("flush", [](PyDecoder& d) {
             std::vector<float> audio;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(d.mu);
               d.model->apply_threads();
               d.session.flush(audio);
             }
             const auto n = py::ssize_t(audio.size());
             return to_numpy(std::move(audio), {n});
           }, "Ends the stream: returns the remaining audio; the session is ready for a new stream.")
      .def_property_readonly("sample_rate", [](const PyDecoder& d) { return d.rate; }, "Rate of the audio returned (Hz).")
      .def_property_readonly("exact", [](const PyDecoder& d) { return d.session.exact(); },
                             "True when the session decodes exactly (EnCodec-format models), False when windowed.")
      .def_property_readonly("block_frames", [](const PyDecoder& d) { return d.session.params().block_frames; })
      .def_property_readonly("left_frames", [](const PyDecoder& d) { return d.session.params().left_frames; },
                             "Past context per window (trimmed to the receptive field of a local backbone).")
      .def_property_readonly("lookahead_frames", [](const PyDecoder& d) { return d.session.params().lookahead_frames; })
      .def_property_readonly("output_delay_ms", [](const PyDecoder& d) { return d.session.output_delay_ms(); },
                             "Audio the resampler holds back now (ms; 0 at the model's rate).");
}

}  // namespace wavtok::python
