/* The building-block API: tokenise, encode text, one UNet call, decode, encode. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/pipeline.h"
#include "text/tokenizer.h"

#define CLIP_TOKENS 77

static sf_status need(sf_pipeline *p, unsigned network, const char *fn) {
  if ((p->networks & network) == 0) {
    static const char *names[] = {"text encoder", "UNet", "VAE decoder", "VAE encoder", "TAESD decoder",
                                  "TAESD encoder"};
    int bit = 0;
    while (bit < 6 && !(network & (1u << bit))) bit++;
    return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "%s: the pipeline has no %s (not in the folder, or not loaded)",
                        fn, bit < 6 ? names[bit] : "such network");
  }
  return SF_OK;
}

/* Marks the context busy for the duration of a compute call (the thread pool must not
 * be swapped under it). */
static void enter(sf_pipeline *p) { atomic_fetch_add(&p->ctx->busy, 1); }
static sf_status leave(sf_pipeline *p, sf_status s, const sf_diag *d) {
  atomic_fetch_sub(&p->ctx->busy, 1);
  return s == SF_OK ? SF_OK : sf_ctx_take_diag(p->ctx, d);
}

/* Keeps the multiply-accumulates of the graph a successful call just ran, for
 * SF_INFO_LAST_MACS (benchmarks divide time by them). */
static void record_stats(sf_pipeline *p, sf_status s, const sf_graph *g) {
  if (s != SF_OK || g == NULL) return;
  sf_graph_stats st;
  sf_graph_get_stats(g, &st);
  p->last_macs = st.macs_dense + st.macs_attention;
  p->last_attention_macs = st.macs_attention;
}

sf_status sf_tokenize(sf_pipeline *p, const char *prompt, int32_t *ids, size_t capacity, size_t *out_untruncated) {
  if (p == NULL || prompt == NULL || ids == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_tokenize: NULL argument");
  if (p->tokenizer == NULL)
    return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "sf_tokenize: the model folder has no tokenizer");
  if (capacity < CLIP_TOKENS)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_tokenize: capacity %zu is less than %d ids", capacity,
                        CLIP_TOKENS);
  sf_diag d = {0};
  size_t untruncated = 0;
  sf_status s = sf_tokenizer_encode(p->tokenizer, prompt, strlen(prompt), sf_tokenizer_eos(p->tokenizer), ids,
                                    CLIP_TOKENS, &untruncated, &d);
  if (s != SF_OK) return sf_ctx_take_diag(p->ctx, &d);
  if (untruncated > CLIP_TOKENS)
    sf_ctx_log(p->ctx, SF_LOG_WARN, "prompt truncated: %zu tokens, the text encoder takes %d", untruncated,
               CLIP_TOKENS);
  if (out_untruncated) *out_untruncated = untruncated;
  return SF_OK;
}

sf_status sf_encode_ids(sf_pipeline *p, const int32_t *ids, size_t batch, size_t tokens, int clip_skip, float *out,
                        size_t out_count) {
  if (p == NULL || ids == NULL || out == NULL || batch == 0 || tokens == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_encode_ids: NULL or empty argument");
  sf_status s = need(p, SF_NET_TEXT_ENCODER, "sf_encode_ids");
  if (s != SF_OK) return s;
  size_t hidden = sf_clip_text_hidden(p->text);
  if (out_count < batch * tokens * hidden)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_ids: out holds %zu floats, %zu needed", out_count,
                        batch * tokens * hidden);
  /* A1111's clip skip counts the last layer as 1; the network counts layers skipped. */
  int skip = clip_skip <= 1 ? 0 : clip_skip - 1;
  sf_diag d = {0};
  enter(p);
  s = sf_clip_text_run(p->text, p->ctx->pool, ids, batch, tokens, skip, out, &d);
  record_stats(p, s, sf_clip_text_graph(p->text));
  return leave(p, s, &d);
}

sf_status sf_encode_prompt(sf_pipeline *p, const char *prompt, int clip_skip, float *out, size_t out_count) {
  int32_t ids[CLIP_TOKENS];
  sf_status s = sf_tokenize(p, prompt, ids, CLIP_TOKENS, NULL);
  if (s != SF_OK) return s;
  return sf_encode_ids(p, ids, 1, CLIP_TOKENS, clip_skip, out, out_count);
}

sf_status sf_unet_predict(sf_pipeline *p, const float *latents, size_t batch, size_t height, size_t width,
                          const float *timesteps, const float *text, size_t tokens, float *out) {
  if (p == NULL || latents == NULL || timesteps == NULL || text == NULL || out == NULL || batch == 0 || tokens == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_unet_predict: NULL or empty argument");
  sf_status s = need(p, SF_NET_UNET, "sf_unet_predict");
  if (s != SF_OK) return s;
  for (size_t i = 0; i < batch; i++)
    if (!isfinite(timesteps[i]))
      return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_unet_predict: timestep %zu is not finite", i);
  sf_diag d = {0};
  enter(p);
  s = sf_unet_run(p->unet, p->ctx->pool, &p->cancel, latents, batch, height, width, timesteps, text, tokens, out, &d);
  record_stats(p, s, sf_unet_graph(p->unet));
  return leave(p, s, &d);
}

sf_status sf_decode_latents(sf_pipeline *p, sf_network decoder, const float *latents, size_t batch, size_t height,
                            size_t width, uint32_t flags, float *image) {
  if (p == NULL || latents == NULL || image == NULL || batch == 0 || height == 0 || width == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_decode_latents: NULL or empty argument");
  if (decoder != SF_NET_VAE_DECODER && decoder != SF_NET_TAESD_DECODER)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_decode_latents: %d is not a decoder", (int)decoder);
  sf_status s = need(p, decoder, "sf_decode_latents");
  if (s != SF_OK) return s;
  sf_diag d = {0};
  enter(p);
  if (decoder == SF_NET_VAE_DECODER)
    s = sf_vae_decode(p->vae, p->ctx->pool, &p->cancel, latents, batch, height, width,
                      (flags & SF_LATENTS_UNSCALED) != 0, image, &d);
  else
    s = sf_taesd_decode(p->taesd, p->ctx->pool, &p->cancel, latents, batch, height, width,
                        (flags & SF_IMAGE_RAW) != 0, image, &d);
  record_stats(p, s, decoder == SF_NET_VAE_DECODER ? sf_vae_decoder_graph(p->vae) : sf_taesd_decoder_graph(p->taesd));
  return leave(p, s, &d);
}

sf_status sf_encode_image(sf_pipeline *p, sf_network encoder, const float *image, size_t batch, size_t height,
                          size_t width, uint32_t flags, float *mean, float *logvar) {
  if (p == NULL || image == NULL || mean == NULL || batch == 0 || height == 0 || width == 0)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_encode_image: NULL or empty argument");
  if (encoder != SF_NET_VAE_ENCODER && encoder != SF_NET_TAESD_ENCODER)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_image: %d is not an encoder", (int)encoder);
  sf_status s = need(p, encoder, "sf_encode_image");
  if (s != SF_OK) return s;
  sf_diag d = {0};
  enter(p);
  if (encoder == SF_NET_VAE_ENCODER) {
    s = sf_vae_encode(p->vae, p->ctx->pool, &p->cancel, image, batch, height, width, mean, logvar, &d);
    if (s == SF_OK && !(flags & SF_LATENTS_UNSCALED)) {
      const sf_vae_config *vc = sf_vae_get_config(p->vae);
      size_t n = batch * vc->latent_channels * (height / sf_vae_scale_factor(p->vae)) *
                 (width / sf_vae_scale_factor(p->vae));
      for (size_t i = 0; i < n; i++) mean[i] *= vc->scaling_factor;
    }
  } else {
    if (logvar != NULL) {
      atomic_fetch_sub(&p->ctx->busy, 1);
      return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_encode_image: TAESD has no log-variance (pass NULL)");
    }
    s = sf_taesd_encode(p->taesd, p->ctx->pool, &p->cancel, image, batch, height, width, (flags & SF_IMAGE_RAW) != 0,
                        mean, &d);
  }
  record_stats(p, s, encoder == SF_NET_VAE_ENCODER ? sf_vae_encoder_graph(p->vae) : sf_taesd_encoder_graph(p->taesd));
  return leave(p, s, &d);
}

sf_status sf_pipeline_get_int(const sf_pipeline *p, sf_info key, int64_t *out) {
  if (p == NULL || out == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_int: NULL argument");
  switch (key) {
    case SF_INFO_NETWORKS: *out = p->networks; return SF_OK;
    case SF_INFO_TEXT_TOKENS: *out = CLIP_TOKENS; return SF_OK;
    case SF_INFO_TEXT_HIDDEN:
      if (p->text == NULL) break;
      *out = (int64_t)sf_clip_text_hidden(p->text);
      return SF_OK;
    case SF_INFO_LATENT_CHANNELS:
      if (p->unet) *out = (int64_t)sf_unet_get_config(p->unet)->in_channels;
      else if (p->vae) *out = (int64_t)sf_vae_get_config(p->vae)->latent_channels;
      else if (p->taesd) *out = 4;
      else break;
      return SF_OK;
    case SF_INFO_DEFAULT_WIDTH:
    case SF_INFO_DEFAULT_HEIGHT: {
      const sf_component *c = sf_model_folder_find(p->folder, "unet");
      int64_t size = 64;
      if (c) sf_json_as_i64(sf_json_get(sf_component_config(c), "sample_size"), &size);
      *out = size * (p->vae ? (int64_t)sf_vae_scale_factor(p->vae) : 8);
      return SF_OK;
    }
    case SF_INFO_ARENA_BYTES: {
      /* Every network keeps its own arena between calls: together they are the
       * pipeline's activation memory. */
      const sf_graph *graphs[] = {p->text ? sf_clip_text_graph(p->text) : NULL,
                                  p->unet ? sf_unet_graph(p->unet) : NULL,
                                  p->vae ? sf_vae_decoder_graph(p->vae) : NULL,
                                  p->vae ? sf_vae_encoder_graph(p->vae) : NULL,
                                  p->taesd ? sf_taesd_decoder_graph(p->taesd) : NULL,
                                  p->taesd ? sf_taesd_encoder_graph(p->taesd) : NULL};
      size_t total = 0;
      for (size_t i = 0; i < sizeof graphs / sizeof graphs[0]; i++)
        if (graphs[i]) total += sf_graph_arena_bytes(graphs[i]);
      *out = (int64_t)total;
      return SF_OK;
    }
    case SF_INFO_PARAMETERS: *out = (int64_t)p->parameters; return SF_OK;
    default: break;
  }
  return sf_ctx_error(p->ctx, key == SF_INFO_VAE_SCALE || (int)key > 9 ? SF_ERR_INVALID_ARGUMENT : SF_ERR_BAD_STATE,
                      "sf_pipeline_get_int: %d is not available as an int for this pipeline", (int)key);
}

sf_status sf_pipeline_get_float(const sf_pipeline *p, sf_info key, double *out) {
  if (p == NULL || out == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_float: NULL argument");
  if (key == SF_INFO_VAE_SCALE) {
    if (p->vae == NULL) return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "sf_pipeline_get_float: no VAE");
    *out = sf_vae_get_config(p->vae)->scaling_factor;
    return SF_OK;
  }
  if (key == SF_INFO_LAST_MACS || key == SF_INFO_LAST_ATTENTION_MACS) {
    *out = key == SF_INFO_LAST_MACS ? p->last_macs : p->last_attention_macs;
    return SF_OK;
  }
  return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_float: %d is not a float info key", (int)key);
}
