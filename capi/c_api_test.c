/* Compiled as plain C: the public header must be valid C. Drives a full stream through the C API
 * (called from capi/c_api_test.cc). codes holds max_frames frames of n_q codes. */
#include <stdio.h>
#include <stdlib.h>

#include "capi/wavtok.h"

int wavtok_c_api_roundtrip(const char* model_path, int n_q, const float* pcm, size_t n, int32_t* codes,
                           size_t max_frames, float* out, size_t max_out, size_t* frames_out, size_t* samples_out) {
  int rc = -1;
  size_t frames = 0, samples = 0, i;
  wavtok_encoder* e = NULL;
  wavtok_decoder* d = NULL;
  wavtok_stream_params p;
  wavtok_model* m = wavtok_model_load(model_path, NULL);
  if (!m) return -1;
  if (wavtok_stream_preset("default", &p) != 0) goto done;
  if (!wavtok_version() || wavtok_set_num_threads(1) != 0 || wavtok_set_precision("f32") != 0) goto done;
  p.n_q = n_q;
  if (wavtok_stream_warm_up(m, &p, 480) < 0 || wavtok_stream_warm_up(NULL, &p, 480) != -1) goto done;
  e = wavtok_encoder_create(m, &p);
  d = wavtok_decoder_create(m, &p);
  wavtok_model_free(m); /* the sessions keep their own reference */
  m = NULL;
  if (!e || !d || wavtok_encoder_n_q(e) != n_q) goto done;
  for (i = 0; i < n; i += 480) { /* 20 ms chunks at 24 kHz */
    size_t k = n - i < 480 ? n - i : 480;
    if (wavtok_encoder_push(e, pcm + i, k) < 0) goto done;
    frames += (size_t)wavtok_encoder_read(e, codes + frames * n_q, max_frames - frames);
  }
  if (wavtok_encoder_flush(e) < 0) goto done;
  frames += (size_t)wavtok_encoder_read(e, codes + frames * n_q, max_frames - frames);
  for (i = 0; i < frames; i += 3) {
    size_t k = frames - i < 3 ? frames - i : 3;
    if (wavtok_decoder_push(d, codes + i * n_q, k, n_q) < 0) goto done;
    samples += (size_t)wavtok_decoder_read(d, out + samples, max_out - samples);
  }
  if (wavtok_decoder_flush(d) < 0) goto done;
  samples += (size_t)wavtok_decoder_read(d, out + samples, max_out - samples);
  *frames_out = frames;
  *samples_out = samples;
  rc = 0;
done:
  wavtok_encoder_free(e);
  wavtok_decoder_free(d);
  wavtok_model_free(m);
  return rc;
}
