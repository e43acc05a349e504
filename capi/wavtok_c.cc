// The C API over Model and the streaming sessions (capi/wavtok.h).
#include "capi/wavtok.h"

#include <algorithm>
#include <string>

#include "codec/default_model.h"
#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "io/token_file.h"
#include "models/model.h"
#include "models/models.h"

struct wavtok_model {
  std::shared_ptr<const wavtok::Model> m;
};
struct wavtok_encoder {
  std::unique_ptr<wavtok::StreamingEncoder> s;
  std::vector<int32_t> ready;  // codes not yet read, frame-major
  int n_q;
};
struct wavtok_decoder {
  std::unique_ptr<wavtok::StreamingDecoder> s;
  std::vector<float> ready;
};

namespace {

thread_local std::string g_error;

template <class F>
auto guard(F&& f, decltype(f()) on_error) -> decltype(f()) {
  try {
    g_error.clear();
    return f();
  } catch (const std::exception& e) {
    g_error = e.what();
  } catch (...) {
    g_error = "unknown error";
  }
  return on_error;
}

wavtok::StreamParams to_params(const wavtok_stream_params* p) {
  wavtok::StreamParams s = wavtok::stream_default_params();
  if (p)
    s = wavtok::StreamParams{p->block_frames, p->left_frames,  p->lookahead_frames,
                             p->n_q,          p->bandwidth_id, p->crossfade_frames};
  return s;
}

template <class T>
int64_t take(std::vector<T>& ready, T* out, size_t max) {
  const size_t n = std::min(max, ready.size());
  std::copy(ready.begin(), ready.begin() + n, out);
  ready.erase(ready.begin(), ready.begin() + n);
  return int64_t(n);
}

}  // namespace

extern "C" {

wavtok_stream_params wavtok_stream_default_params(void) {
  const wavtok::StreamParams s = wavtok::stream_default_params();
  return wavtok_stream_params{s.block_frames, s.left_frames,  s.lookahead_frames,
                              s.n_q,          s.bandwidth_id, s.crossfade_frames};
}

const char* wavtok_last_error(void) { return g_error.c_str(); }

const char* wavtok_version(void) { return WAVTOK_VERSION; }

int wavtok_set_num_threads(int n) {
  return guard(
      [&]() -> int {
        if (n < 1) throw wavtok::Error("wavtok_set_num_threads: " + std::to_string(n) + " threads (at least 1)");
        wavtok::set_num_threads(n);
        return 0;
      },
      -1);
}

int wavtok_set_precision(const char* name) {
  return guard(
      [&]() -> int {
        const std::string p = name ? name : "";
        if (p == "f32") wavtok::set_precision(wavtok::Precision::F32);
        else if (p == "bf16") wavtok::set_precision(wavtok::Precision::BF16);  // throws on a CPU without native bf16
        else if (p == "f64") wavtok::set_precision(wavtok::Precision::F64);
        else throw wavtok::Error("wavtok_set_precision: '" + p + "' (use \"f32\", \"bf16\" or \"f64\")");
        return 0;
      },
      -1);
}

int wavtok_stream_preset(const char* name, wavtok_stream_params* out) {
  return guard(
      [&]() -> int {
        if (!name || !out) throw wavtok::Error("wavtok_stream_preset: NULL argument");
        const wavtok::StreamParams s = wavtok::stream_preset(name);
        *out = wavtok_stream_params{s.block_frames, s.left_frames,  s.lookahead_frames,
                                    s.n_q,          s.bandwidth_id, s.crossfade_frames};
        return 0;
      },
      -1);
}

wavtok_model* wavtok_model_load(const char* path, const char* config_path) {
  return guard(
      [&]() -> wavtok_model* {
        wavtok::LoadOptions o;
        if (config_path) o.config_path = config_path;
        auto m = path ? wavtok::Model::load(path, o) : wavtok::load_embedded_default_model();
        return new wavtok_model{std::move(m)};
      },
      nullptr);
}

void wavtok_model_free(wavtok_model* model) { delete model; }
int wavtok_model_sample_rate(const wavtok_model* m) { return m ? m->m->sample_rate() : -1; }
int wavtok_model_hop(const wavtok_model* m) { return m ? m->m->hop() : -1; }
int wavtok_model_n_q(const wavtok_model* m) { return m ? m->m->max_n_q() : -1; }
int wavtok_model_codebook_size(const wavtok_model* m) { return m ? m->m->config().quantizer.bins : -1; }
int wavtok_model_streams_exactly(const wavtok_model* m) { return m ? int(wavtok::streams_exactly(*m->m)) : -1; }

uint64_t wavtok_model_fingerprint(const wavtok_model* m) { return m ? m->m->fingerprint() : 0; }
uint64_t wavtok_model_parent_fingerprint(const wavtok_model* m) { return m ? m->m->parent_fingerprint() : 0; }

int wavtok_model_check_tokens(const wavtok_model* model, uint64_t fingerprint, uint64_t parent_fingerprint) {
  return guard(
      [&]() -> int {
        if (!model) throw wavtok::Error("wavtok_model_check_tokens: model is NULL");
        const wavtok::Model& m = *model->m;
        const auto l = wavtok::token_lineage(fingerprint, parent_fingerprint, m.fingerprint(), m.parent_fingerprint());
        if (l == wavtok::TokenLineage::Same) return 0;
        const std::string msg = wavtok::lineage_message(l, fingerprint, m.fingerprint());
        if (l == wavtok::TokenLineage::Unrelated) throw wavtok::Error(msg);
        g_error = msg;  // the warning
        return 1;
      },
      -1);
}

int64_t wavtok_stream_warm_up(const wavtok_model* model, const wavtok_stream_params* params, size_t chunk_samples) {
  return guard(
      [&]() -> int64_t {
        if (!model) throw wavtok::Error("wavtok_stream_warm_up: model is NULL");
        if (chunk_samples > size_t(INT64_MAX)) throw wavtok::Error("wavtok_stream_warm_up: chunk too large");
        return wavtok::warm_up_streaming(model->m, to_params(params), int64_t(chunk_samples));
      },
      int64_t{-1});
}

wavtok_encoder* wavtok_encoder_create(const wavtok_model* model, const wavtok_stream_params* params) {
  return guard(
      [&]() -> wavtok_encoder* {
        if (!model) throw wavtok::Error("wavtok_encoder_create: model is NULL");
        auto s = std::make_unique<wavtok::StreamingEncoder>(model->m, to_params(params));
        const int nq = s->n_q();
        return new wavtok_encoder{std::move(s), {}, nq};
      },
      nullptr);
}

void wavtok_encoder_free(wavtok_encoder* enc) { delete enc; }

int64_t wavtok_encoder_push(wavtok_encoder* enc, const float* pcm, size_t n) {
  return guard(
      [&]() -> int64_t {
        if (!enc || (!pcm && n)) throw wavtok::Error("wavtok_encoder_push: NULL argument");
        if (n > size_t(INT64_MAX)) throw wavtok::Error("wavtok_encoder_push: chunk too large");
        return enc->s->push(pcm, int64_t(n), enc->ready);
      },
      -1);
}

int64_t wavtok_encoder_flush(wavtok_encoder* enc) {
  return guard(
      [&]() -> int64_t {
        if (!enc) throw wavtok::Error("wavtok_encoder_flush: NULL encoder");
        return enc->s->flush(enc->ready);
      },
      -1);
}

int wavtok_encoder_n_q(const wavtok_encoder* enc) { return enc ? enc->n_q : -1; }

int wavtok_encoder_set_input_rate(wavtok_encoder* enc, int rate) {
  return guard(
      [&]() -> int {
        if (!enc) throw wavtok::Error("wavtok_encoder_set_input_rate: NULL encoder");
        enc->s->set_input_rate(rate);
        return 0;
      },
      -1);
}

int64_t wavtok_encoder_read(wavtok_encoder* enc, int32_t* codes, size_t max_frames) {
  if (!enc || !codes) return 0;
  return take(enc->ready, codes, max_frames * size_t(enc->n_q)) / enc->n_q;
}

wavtok_decoder* wavtok_decoder_create(const wavtok_model* model, const wavtok_stream_params* params) {
  return guard(
      [&]() -> wavtok_decoder* {
        if (!model) throw wavtok::Error("wavtok_decoder_create: model is NULL");
        return new wavtok_decoder{std::make_unique<wavtok::StreamingDecoder>(model->m, to_params(params)), {}};
      },
      nullptr);
}

void wavtok_decoder_free(wavtok_decoder* dec) { delete dec; }

int64_t wavtok_decoder_push(wavtok_decoder* dec, const int32_t* codes, size_t frames, int n_q) {
  return guard(
      [&]() -> int64_t {
        if (!dec || (!codes && frames)) throw wavtok::Error("wavtok_decoder_push: NULL argument");
        if (frames > size_t(INT64_MAX)) throw wavtok::Error("wavtok_decoder_push: too many frames");
        return dec->s->push(codes, int64_t(frames), n_q, dec->ready);
      },
      -1);
}

int64_t wavtok_decoder_flush(wavtok_decoder* dec) {
  return guard(
      [&]() -> int64_t {
        if (!dec) throw wavtok::Error("wavtok_decoder_flush: NULL decoder");
        return dec->s->flush(dec->ready);
      },
      -1);
}

int wavtok_decoder_set_output_rate(wavtok_decoder* dec, int rate) {
  return guard(
      [&]() -> int {
        if (!dec) throw wavtok::Error("wavtok_decoder_set_output_rate: NULL decoder");
        dec->s->set_output_rate(rate);
        return 0;
      },
      -1);
}

int64_t wavtok_decoder_read(wavtok_decoder* dec, float* pcm, size_t max_samples) {
  if (!dec || !pcm) return 0;
  return take(dec->ready, pcm, max_samples);
}

}  // extern "C"
