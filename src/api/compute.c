/* The building-block API: tokenise, encode text, one UNet call, decode, encode. Each call is
 * a run of its own (pipeline/run.h): a run state with a fresh cancel token, released when the
 * call returns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/engine.h"
#include "text/tokenizer.h"

static sf_status finish(sf_pipeline *p, sf_run *r, sf_status s, sf_diag *d, const char *fn) {
  sf_run_release(r);
  if (s == SF_OK) return SF_OK;
  sf_diag_prefix(d, "%s: ", fn);
  return sf_ctx_take_diag(p->ctx, d);
}

static sf_status begin(sf_pipeline *p, sf_run **r, sf_diag *d, const char *fn) {
  sf_status s = sf_run_acquire(p, r, d);
  if (s != SF_OK) {
    sf_diag_prefix(d, "%s: ", fn);
    return sf_ctx_take_diag(p->ctx, d);
  }
  return SF_OK;
}

sf_status sf_tokenize(sf_pipeline *p, const char *prompt, int32_t *ids, size_t capacity, size_t *out_untruncated) {
  if (p == NULL || prompt == NULL || ids == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_tokenize: NULL argument");
  if (capacity < SF_CLIP_TOKENS)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_tokenize: capacity %zu is less than %d ids", capacity,
                        SF_CLIP_TOKENS);
  sf_diag d = {0};
  if (sf_engine_tokenize(p, prompt, ids, out_untruncated, &d) != SF_OK) {
    sf_diag_prefix(&d, "sf_tokenize: ");
    return sf_ctx_take_diag(p->ctx, &d);
  }
  return SF_OK;
}

sf_status sf_token_text(sf_pipeline *p, int32_t id, char *buffer, size_t capacity, size_t *out_needed) {
  if (p == NULL || (buffer == NULL && capacity > 0))
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_token_text: NULL argument");
  if (p->tokenizer == NULL) return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "sf_token_text: the pipeline has no tokenizer");
  const char *text = sf_tokenizer_token(p->tokenizer, id);
  if (text == NULL)
    return sf_ctx_error(p->ctx, SF_ERR_NOT_FOUND, "sf_token_text: id %ld is outside the vocabulary (0..%zu)",
                        (long)id, sf_tokenizer_vocab_size(p->tokenizer) - 1);
  size_t len = strlen(text);
  if (out_needed) *out_needed = len + 1;
  if (capacity > 0) {
    size_t n = len < capacity - 1 ? len : capacity - 1;
    memcpy(buffer, text, n);
    buffer[n] = '\0';
  }
  return SF_OK;
}

sf_status sf_encode_ids(sf_pipeline *p, const int32_t *ids, size_t batch, size_t tokens, int clip_skip, float *out,
                        size_t out_count) {
  if (p == NULL || ids == NULL || out == NULL || batch == 0 || tokens == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_encode_ids: NULL or empty argument");
  size_t hidden = sf_engine_text_hidden(p);
  if (hidden && out_count < batch * tokens * hidden)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_ids: out holds %zu floats, %zu needed", out_count,
                        batch * tokens * hidden);
  sf_diag d = {0};
  sf_run *r;
  if (begin(p, &r, &d, "sf_encode_ids") != SF_OK) return d.status;
  sf_status s = sf_engine_encode_ids(p, r, ids, batch, tokens, clip_skip, out, &d);
  return finish(p, r, s, &d, "sf_encode_ids");
}

sf_status sf_encode_prompt(sf_pipeline *p, const char *prompt, int clip_skip, float *out, size_t out_count) {
  if (p == NULL || prompt == NULL || out == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_encode_prompt: NULL argument");
  size_t hidden = sf_engine_text_hidden(p);
  if (hidden && out_count < SF_CLIP_TOKENS * hidden)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_prompt: out holds %zu floats, %zu needed",
                        out_count, (size_t)SF_CLIP_TOKENS * hidden);
  sf_diag d = {0};
  sf_run *r;
  if (begin(p, &r, &d, "sf_encode_prompt") != SF_OK) return d.status;
  sf_status s = sf_engine_encode_prompt(p, r, prompt, clip_skip, out, &d);
  return finish(p, r, s, &d, "sf_encode_prompt");
}

/* ---- UNet ---------------------------------------------------------------------------------- */

static sf_status unet_predict(sf_pipeline *p, const float *latents, size_t batch, size_t height, size_t width,
                              const float *timesteps, const float *text, size_t tokens, float *out) {
  sf_diag d = {0};
  sf_run *r;
  if (begin(p, &r, &d, "sf_unet_predict") != SF_OK) return d.status;
  sf_status s = sf_engine_unet(p, r, latents, batch, height, width, timesteps, p->unet_guidance, text, tokens, out, &d);
  return finish(p, r, s, &d, "sf_unet_predict");
}

/* SF_OK when p has network to run, else the engine's reason (no such network, or an inspect-only
 * load) as fn's error. */
static sf_status need(sf_pipeline *p, unsigned network, const char *fn) {
  sf_diag d = {0};
  if (sf_engine_need(p, network, &d) == SF_OK) return SF_OK;
  sf_diag_prefix(&d, "%s: ", fn);
  return sf_ctx_take_diag(p->ctx, &d);
}

static sf_status unet_common_checks(sf_pipeline *p, const float *latents, size_t batch, size_t height, size_t width,
                                    const float *timesteps, const float *text, size_t tokens, const float *out,
                                    const char *fn) {
  if (p == NULL || latents == NULL || timesteps == NULL || text == NULL || out == NULL || batch == 0 || tokens == 0 ||
      height == 0 || width == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "%s: NULL or empty argument", fn);
  sf_status s = need(p, SF_NET_UNET, fn);
  if (s != SF_OK) return s;
  for (size_t i = 0; i < batch; i++)
    if (!isfinite(timesteps[i]))
      return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "%s: timestep %zu is not finite", fn, i);
  return SF_OK;
}

sf_status sf_unet_predict(sf_pipeline *p, const float *latents, size_t batch, size_t height, size_t width,
                          const float *timesteps, const float *text, size_t tokens, float *out) {
  sf_status s = unet_common_checks(p, latents, batch, height, width, timesteps, text, tokens, out, "sf_unet_predict");
  if (s != SF_OK) return s;
  return unet_predict(p, latents, batch, height, width, timesteps, text, tokens, out);
}

/* The element count of [a, b, c, e], or SIZE_MAX when it overflows. */
static size_t count4(size_t a, size_t b, size_t c, size_t e) {
  double x = (double)a * (double)b * (double)c * (double)e;
  return x < 0x1p62 ? a * b * c * e : SIZE_MAX;
}

sf_status sf_unet_predict_v2(sf_pipeline *p, const float *latents, size_t latents_count, size_t batch, size_t height,
                             size_t width, const float *timesteps, size_t timesteps_count, const float *text,
                             size_t text_count, size_t tokens, float *out, size_t out_capacity) {
  sf_status s = unet_common_checks(p, latents, batch, height, width, timesteps, text, tokens, out, "sf_unet_predict_v2");
  if (s != SF_OK) return s;
  size_t c = sf_engine_latent_channels(p), hidden = sf_engine_unet_text_hidden(p);
  size_t want = count4(batch, c, height, width), want_text = count4(batch, tokens, hidden, 1);
  size_t want_out = count4(batch, sf_engine_unet_out_channels(p), height, width);
  if (latents_count != want)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_unet_predict_v2: latents_count %zu, expected %zu (batch %zu x %zu channels x %zu x %zu)",
                        latents_count, want, batch, c, height, width);
  if (timesteps_count != batch)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_unet_predict_v2: timesteps_count %zu, expected %zu",
                        timesteps_count, batch);
  if (text_count != want_text)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_unet_predict_v2: text_count %zu, expected %zu (batch %zu x %zu tokens x %zu)", text_count,
                        want_text, batch, tokens, hidden);
  if (out_capacity < want_out)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_unet_predict_v2: out_capacity %zu, %zu needed (batch %zu x %zu channels x %zu x %zu)",
                        out_capacity, want_out, batch, sf_engine_unet_out_channels(p), height, width);
  return unet_predict(p, latents, batch, height, width, timesteps, text, tokens, out);
}

/* ---- decoders and encoders ----------------------------------------------------------------- */

static sf_status coder_checks(sf_pipeline *p, unsigned net, int decoder, const void *in, const void *out, size_t batch,
                              size_t height, size_t width, const char *fn) {
  if (p == NULL || in == NULL || out == NULL || batch == 0 || height == 0 || width == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "%s: NULL or empty argument", fn);
  if (decoder ? (net != SF_NET_VAE_DECODER && net != SF_NET_TAESD_DECODER)
              : (net != SF_NET_VAE_ENCODER && net != SF_NET_TAESD_ENCODER))
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "%s: %u is not %s", fn, net, decoder ? "a decoder" : "an encoder");
  return need(p, net, fn);
}

static sf_status decode(sf_pipeline *p, sf_network decoder, const float *latents, size_t batch, size_t height,
                        size_t width, uint32_t flags, float *image) {
  sf_diag d = {0};
  sf_run *r;
  if (begin(p, &r, &d, "sf_decode_latents") != SF_OK) return d.status;
  sf_status s = sf_engine_decode(p, r, decoder, latents, batch, height, width, flags, image, &d);
  return finish(p, r, s, &d, "sf_decode_latents");
}

sf_status sf_decode_latents(sf_pipeline *p, sf_network decoder, const float *latents, size_t batch, size_t height,
                            size_t width, uint32_t flags, float *image) {
  sf_status s = coder_checks(p, decoder, 1, latents, image, batch, height, width, "sf_decode_latents");
  if (s != SF_OK) return s;
  return decode(p, decoder, latents, batch, height, width, flags, image);
}

sf_status sf_decode_latents_v2(sf_pipeline *p, sf_network decoder, const float *latents, size_t latents_count,
                               size_t batch, size_t height, size_t width, uint32_t flags, float *image,
                               size_t image_capacity) {
  sf_status s = coder_checks(p, decoder, 1, latents, image, batch, height, width, "sf_decode_latents_v2");
  if (s != SF_OK) return s;
  size_t c = sf_engine_latent_channels(p), f = sf_engine_scale_factor(p, decoder);
  size_t want = count4(batch, c, height, width);
  size_t want_image = height > SIZE_MAX / f || width > SIZE_MAX / f ? SIZE_MAX : count4(batch, 3, height * f, width * f);
  if (latents_count != want)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_decode_latents_v2: latents_count %zu, expected %zu (batch %zu x %zu channels x %zu x %zu)",
                        latents_count, want, batch, c, height, width);
  if (image_capacity < want_image)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_decode_latents_v2: image_capacity %zu, %zu needed (batch %zu x 3 x %zu x %zu)",
                        image_capacity, want_image, batch, height * f, width * f);
  return decode(p, decoder, latents, batch, height, width, flags, image);
}

static sf_status encode(sf_pipeline *p, sf_network encoder, const float *image, size_t batch, size_t height,
                        size_t width, uint32_t flags, float *mean, float *logvar) {
  sf_diag d = {0};
  sf_run *r;
  if (begin(p, &r, &d, "sf_encode_image") != SF_OK) return d.status;
  sf_status s = sf_engine_encode_image(p, r, encoder, image, batch, height, width, flags, mean, logvar, &d);
  return finish(p, r, s, &d, "sf_encode_image");
}

sf_status sf_encode_image(sf_pipeline *p, sf_network encoder, const float *image, size_t batch, size_t height,
                          size_t width, uint32_t flags, float *mean, float *logvar) {
  sf_status s = coder_checks(p, encoder, 0, image, mean, batch, height, width, "sf_encode_image");
  if (s != SF_OK) return s;
  return encode(p, encoder, image, batch, height, width, flags, mean, logvar);
}

sf_status sf_encode_image_v2(sf_pipeline *p, sf_network encoder, const float *image, size_t image_count, size_t batch,
                             size_t height, size_t width, uint32_t flags, float *mean, size_t mean_capacity,
                             float *logvar, size_t logvar_capacity) {
  sf_status s = coder_checks(p, encoder, 0, image, mean, batch, height, width, "sf_encode_image_v2");
  if (s != SF_OK) return s;
  size_t c = sf_engine_latent_channels(p), f = sf_engine_scale_factor(p, encoder);
  size_t want_image = count4(batch, 3, height, width);
  if (image_count != want_image)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_encode_image_v2: image_count %zu, expected %zu (batch %zu x 3 x %zu x %zu)", image_count,
                        want_image, batch, height, width);
  if (height % f != 0 || width % f != 0)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_encode_image_v2: image %zux%zu: sides must be multiples of the encoder's factor %zu", width,
                        height, f);
  size_t want = count4(batch, c, height / f, width / f);
  if (mean_capacity < want)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_encode_image_v2: mean_capacity %zu, %zu needed (batch %zu x %zu channels x %zu x %zu)",
                        mean_capacity, want, batch, c, height / f, width / f);
  if (logvar != NULL && logvar_capacity < want)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_image_v2: logvar_capacity %zu, %zu needed",
                        logvar_capacity, want);
  if (logvar == NULL && logvar_capacity != 0)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_image_v2: logvar is NULL with capacity %zu",
                        logvar_capacity);
  return encode(p, encoder, image, batch, height, width, flags, mean, logvar);
}
