/* The networks of a pipeline, run in a run state: each call takes the context's thread pool
 * for its duration (so the pool cannot be replaced under it), runs one network on the run's
 * plan of that network and the run's workspace, and records the call's statistics. */
#include "pipeline/engine.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/wsrc.h"
#include "io/pack.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "text/prompt_chunks.h"
#include "text/tokenizer.h"

/* ---- shapes ---------------------------------------------------------------------------------- */

/* Shapes come from the configs, so they hold whether or not the networks are resident. */
#define HAS(net) ((p->configured & (net)) != 0)
#define HAS_VAE() HAS(SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER)

size_t sf_engine_latent_channels(const sf_pipeline *p) {
  if (HAS(SF_NET_UNET)) return p->unet_cfg.in_channels;
  if (HAS_VAE()) return p->vae_cfg.latent_channels;
  if (p->taesd) return sf_taesd_get_config(p->taesd)->latent_channels;
  return 0;
}

size_t sf_engine_text_hidden(const sf_pipeline *p) { return HAS(SF_NET_TEXT_ENCODER) ? p->text_cfg.hidden : 0; }
size_t sf_engine_unet_out_channels(const sf_pipeline *p) { return HAS(SF_NET_UNET) ? p->unet_cfg.out_channels : 0; }
size_t sf_engine_unet_text_hidden(const sf_pipeline *p) {
  return HAS(SF_NET_UNET) ? p->unet_cfg.cross_attention_dim : 0;
}
size_t sf_engine_unet_multiple(const sf_pipeline *p) {
  return HAS(SF_NET_UNET) ? (size_t)1 << p->unet_cfg.n_downsamplers : 1;
}
size_t sf_engine_text_layers(const sf_pipeline *p) { return HAS(SF_NET_TEXT_ENCODER) ? p->text_cfg.layers : 0; }

size_t sf_engine_scale_factor(const sf_pipeline *p, unsigned network) {
  switch (network) {
    case SF_NET_VAE_DECODER:
    case SF_NET_VAE_ENCODER: return HAS_VAE() ? (size_t)1 << (p->vae_cfg.n_levels - 1) : 0;
    case SF_NET_TAESD_DECODER: return p->taesd ? sf_taesd_scale_factor(p->taesd, 0) : 0;
    case SF_NET_TAESD_ENCODER: return p->taesd ? sf_taesd_scale_factor(p->taesd, 1) : 0;
    default: return 0;
  }
}

size_t sf_engine_default_scale_factor(const sf_pipeline *p) {
  if (p->configured & SF_NET_VAE_DECODER) return sf_engine_scale_factor(p, SF_NET_VAE_DECODER);
  if (p->configured & SF_NET_TAESD_DECODER) return sf_engine_scale_factor(p, SF_NET_TAESD_DECODER);
  if (HAS_VAE()) return sf_engine_scale_factor(p, SF_NET_VAE_DECODER);
  return 8;
}

size_t sf_engine_size_multiple(const sf_pipeline *p) {
  return sf_engine_default_scale_factor(p) * sf_engine_unet_multiple(p);
}

int64_t sf_engine_default_size(const sf_pipeline *p) {
  const sf_component *c = sf_model_folder_find(p->folder, "unet");
  int64_t size = 64;
  if (c) sf_json_as_i64(sf_json_get(sf_component_config(c), "sample_size"), &size);
  return size * (int64_t)sf_engine_default_scale_factor(p);
}

sf_run *sf_engine_idle_run(sf_pipeline *p) { return p->idle_run; }

static size_t graph_weight_bytes(const sf_graph *g) {
  if (g == NULL) return 0;
  sf_graph_stats st;
  sf_graph_get_stats(g, NULL, &st);
  return st.weights_bytes;
}

int sf_engine_weight_type(const sf_pipeline *p) {
  if (p->pack != NULL) return (int)sf_pack_get_info(p->pack)->weight_type; /* as the load that wrote it */
  switch ((sf_weight_policy)p->weight_policy) {
    case SF_WEIGHTS_FORCE_F32: return SF_WEIGHT_F32;
    case SF_WEIGHTS_FORCE_F16: return SF_WEIGHT_F16;
    case SF_WEIGHTS_FORCE_Q8: return SF_WEIGHT_Q8;
    case SF_WEIGHTS_AS_STORED: break;
  }
  /* as stored: the UNet's first convolution tells (a checkpoint is saved in one precision) */
  const sf_component *c = sf_model_folder_find(p->folder, "unet");
  if (p->random_weights || c == NULL || c->weights == NULL) return SF_WEIGHT_F32;
  const sf_st_tensor *t = sf_weights_find(c->weights, "conv_in.weight");
  return t != NULL && t->dtype == SF_DTYPE_F16 ? SF_WEIGHT_F16 : SF_WEIGHT_F32;
}

size_t sf_engine_weight_bytes(const sf_pipeline *cp) {
  sf_pipeline *p = (sf_pipeline *)cp; /* the residency lock */
  size_t total = 0;
  pthread_mutex_lock(&p->resident_lock);
  if (p->text) total += graph_weight_bytes(sf_clip_text_graph(p->text)) + sf_clip_text_extra_bytes(p->text);
  if (p->unet) total += graph_weight_bytes(sf_unet_graph(p->unet));
  if (p->vae) total += graph_weight_bytes(sf_vae_decoder_graph(p->vae)) + graph_weight_bytes(sf_vae_encoder_graph(p->vae));
  if (p->taesd)
    total += graph_weight_bytes(sf_taesd_decoder_graph(p->taesd)) + graph_weight_bytes(sf_taesd_encoder_graph(p->taesd));
  pthread_mutex_unlock(&p->resident_lock);
  return total;
}

/* ---- running a network in a run state ------------------------------------------------------- */

static sf_exec enter(sf_pipeline *p, sf_run *r) {
  sf_exec ex = {.pool = sf_ctx_pool_acquire(p->ctx), .cancel = &r->cancel, .ws = &r->ws};
  return ex;
}

static sf_status leave(sf_pipeline *p, sf_run *r, sf_status s, const sf_graph *g, const sf_plan *pl) {
  sf_ctx_pool_release(p->ctx);
  atomic_store(&r->ws_bytes, r->ws.cap);
  if (s == SF_OK && g != NULL) {
    sf_graph_stats st;
    sf_graph_get_stats(g, pl, &st);
    pthread_mutex_lock(&p->runs_lock);
    p->last_macs = st.macs_dense + st.macs_attention;
    p->last_attention_macs = st.macs_attention;
    pthread_mutex_unlock(&p->runs_lock);
  }
  return s;
}

sf_status sf_engine_need(const sf_pipeline *p, unsigned network, sf_diag *d) {
  if (p->networks & network) return SF_OK;
  if (p->inspect_only)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline was loaded with SF_PARAM_INSPECT_ONLY: it was checked and "
                                            "sized, not loaded; load it again without that option to run it");
  static const char *names[] = {"text encoder",  "UNet",          "VAE decoder",
                                "VAE encoder",   "TAESD decoder", "TAESD encoder"};
  int bit = 0;
  while (bit < 6 && !(network & (1u << bit))) bit++;
  return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no %s (not in the folder, or not loaded)",
                     bit < 6 ? names[bit] : "such network");
}

sf_status sf_engine_tokenize(const sf_pipeline *p, const char *prompt, int32_t *ids, size_t *untruncated,
                             sf_diag *d) {
  if (p->tokenizer == NULL)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no tokenizer (pass SF_PARAM_TOKENIZER_PATH at load)");
  size_t n = 0;
  sf_status s = sf_tokenizer_encode(p->tokenizer, prompt, strlen(prompt), sf_tokenizer_eos(p->tokenizer), ids,
                                    SF_CLIP_TOKENS, &n, d);
  if (s != SF_OK) return s;
  if (n > SF_CLIP_TOKENS)
    sf_ctx_log(p->ctx, SF_LOG_WARN, "prompt truncated: %zu tokens, the text encoder takes %d", n, SF_CLIP_TOKENS);
  if (untruncated) *untruncated = n;
  return SF_OK;
}

static sf_status encode_rows(sf_pipeline *p, sf_run *r, const int32_t *ids, size_t batch, size_t tokens,
                             const float *extra, size_t n_extra, int clip_skip, float *out, sf_diag *d) {
  sf_status s = sf_engine_need(p, SF_NET_TEXT_ENCODER, d);
  if (s != SF_OK) return s;
  size_t layers = p->text_cfg.layers;
  /* clip skip k reads the output of layer layers-k+1; layers+1 reads the embeddings. */
  if (clip_skip < 0 || (size_t)clip_skip > layers + 1)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "clip skip %d: the text encoder has %zu layers (use 0..%zu)",
                       clip_skip, layers, layers + 1);
  /* A1111's clip skip counts the last layer as 1; the network counts layers skipped. */
  int skip = clip_skip <= 1 ? 0 : clip_skip - 1;
  if ((s = sf_pipeline_acquire_network(p, SF_NET_TEXT_ENCODER, &r->ws, d)) != SF_OK) return s;
  sf_plan *pl = r->plans[SF_SLOT_TEXT];
  sf_exec ex = enter(p, r);
  s = sf_clip_text_run_ext(p->text, &ex, pl, ids, batch, tokens, extra, n_extra, skip, out, d);
  s = leave(p, r, s, sf_clip_text_graph(p->text), pl);
  sf_pipeline_release_network(p, SF_NET_TEXT_ENCODER);
  return s;
}

sf_status sf_engine_encode_ids(sf_pipeline *p, sf_run *r, const int32_t *ids, size_t batch, size_t tokens,
                               int clip_skip, float *out, sf_diag *d) {
  return encode_rows(p, r, ids, batch, tokens, NULL, 0, clip_skip, out, d);
}

/* A1111's emphasis ("Original"): every row of encoder output is multiplied by its tokens'
 * weights, then scaled back to the row's mean before weighting. Means are summed in double
 * and rounded to float once (torch's float32 reduction order is not reproduced); the rest is
 * float32 arithmetic as in A1111: z *= w; z *= (float)(old_mean / new_mean). A row whose
 * weights are all 1 is left untouched (A1111's arithmetic would give back the same bits). */
static int apply_emphasis(float *z, const float *weights, size_t tokens, size_t hidden) {
  int any = 0;
  for (size_t t = 0; t < tokens; t++) any |= weights[t] != 1.0f;
  if (!any) return 1;
  size_t n = tokens * hidden;
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += z[i];
  float old_mean = (float)(sum / (double)n);
  sum = 0;
  for (size_t t = 0; t < tokens; t++)
    for (size_t k = 0; k < hidden; k++) {
      float v = z[t * hidden + k] * weights[t];
      z[t * hidden + k] = v;
      sum += v;
    }
  float new_mean = (float)(sum / (double)n);
  float factor = old_mean / new_mean;
  /* weights that cancel the mean out or overflow it: A1111 would write NaN or Inf */
  if (!isfinite(factor) || !isfinite(new_mean) || factor == 0.0f) return 0;
  for (size_t i = 0; i < n; i++) z[i] *= factor;
  return 1;
}

sf_status sf_engine_encode_conditioning(sf_pipeline *p, sf_run *r, const char *prompt, int clip_skip, int a1111,
                                        float **out, size_t *tokens, sf_diag *d) {
  *out = NULL;
  *tokens = 0;
  if (p->tokenizer == NULL)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no tokenizer (pass SF_PARAM_TOKENIZER_PATH at load)");
  sf_status s = sf_engine_need(p, SF_NET_TEXT_ENCODER, d);
  if (s != SF_OK) return s;
  size_t hidden = p->text_cfg.hidden;
  sf_prompt_chunks c;
  s = sf_prompt_chunks_build(p->tokenizer, p->embeddings, hidden, (int32_t)p->text_cfg.vocab, prompt ? prompt : "",
                             a1111, &c, d);
  if (s != SF_OK) return s;
  if (!a1111 && c.untruncated > SF_CLIP_TOKENS)
    sf_ctx_log(p->ctx, SF_LOG_WARN, "prompt truncated: %zu tokens, the text encoder takes %d", c.untruncated,
               SF_CLIP_TOKENS);
  size_t rows = c.n, t = SF_PROMPT_CHUNK_TOKENS;
  float *z = malloc(rows * t * hidden * sizeof *z);
  if (z == NULL) s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "prompt: out of memory for %zu x %zu tokens", rows, t);
  if (s == SF_OK) s = encode_rows(p, r, c.ids, rows, t, c.extra, c.n_extra, clip_skip, z, d);
  if (s == SF_OK && c.weighted)
    for (size_t i = 0; i < rows && s == SF_OK; i++)
      if (!apply_emphasis(z + i * t * hidden, c.weights + i * t, t, hidden))
        s = sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                        "prompt syntax: the weights of chunk %zu bring its mean to 0 or out of float range (the "
                        "emphasis rescales by it)",
                        i + 1);
  sf_prompt_chunks_free(&c);
  if (s != SF_OK) {
    free(z);
    return s;
  }
  *out = z;
  *tokens = rows * t;
  return SF_OK;
}

sf_status sf_engine_encode_prompt(sf_pipeline *p, sf_run *r, const char *prompt, int clip_skip, float *out,
                                  sf_diag *d) {
  float *z = NULL;
  size_t tokens = 0;
  sf_status s = sf_engine_encode_conditioning(p, r, prompt, clip_skip, 0, &z, &tokens, d);
  if (s != SF_OK) return s;
  memcpy(out, z, tokens * p->text_cfg.hidden * sizeof *z); /* plain: one row of SF_CLIP_TOKENS */
  free(z);
  return SF_OK;
}

int sf_engine_guidance_embedded(const sf_pipeline *p) { return HAS(SF_NET_UNET) && p->unet_cfg.time_cond_proj_dim; }

int sf_engine_is_lcm(const sf_pipeline *p) {
  const char *cls = p->folder ? p->folder->class_name : NULL;
  return sf_engine_guidance_embedded(p) || (cls && strcmp(cls, "LatentConsistencyModelPipeline") == 0);
}

void sf_engine_request_defaults(const sf_pipeline *p, sf_request *rq) {
  if (!sf_engine_is_lcm(p)) return;
  if (!rq->steps_given) rq->steps = SF_LCM_DEFAULT_STEPS;
  if (!rq->guidance_given) rq->guidance = SF_LCM_DEFAULT_GUIDANCE;
}

int sf_engine_uses_cfg(const sf_pipeline *p, double guidance) { return guidance > 1.0 && !sf_engine_is_lcm(p); }

sf_status sf_engine_unet(sf_pipeline *p, sf_run *r, const float *latents, size_t batch, size_t height, size_t width,
                         const float *timesteps, double guidance, const float *text, size_t tokens, float *out,
                         sf_diag *d) {
  sf_status s = sf_engine_need(p, SF_NET_UNET, d);
  if (s != SF_OK) return s;
  /* An LCM UNet takes the guidance as an embedding (timestep_cond), one row per batch item, in
   * the run's buffer: allocated by the first call, reused by every step after. */
  size_t cond_dim = p->unet_cfg.time_cond_proj_dim;
  float *cond = NULL;
  if (cond_dim) {
    if (!isfinite(guidance) || fabs(guidance) > FLT_MAX)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "guidance scale %g is not a finite float", guidance);
    if (batch > SIZE_MAX / sizeof(float) / cond_dim)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "unet: batch %zu is too large", batch);
    if (r->guidance_cap < batch * cond_dim) {
      float *grown = realloc(r->guidance_embed, batch * cond_dim * sizeof *grown);
      if (grown == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "unet: out of memory for the guidance embedding");
      r->guidance_embed = grown;
      r->guidance_cap = batch * cond_dim;
    }
    cond = r->guidance_embed;
    const float w = (float)(guidance - 1.0); /* the pipeline's Python float, as a float32 tensor */
    sf_guidance_embedding_f32(&w, 1, cond_dim, cond);
    for (size_t i = 1; i < batch; i++) memcpy(cond + i * cond_dim, cond, cond_dim * sizeof *cond);
  }
  if ((s = sf_pipeline_acquire_network(p, SF_NET_UNET, &r->ws, d)) != SF_OK) return s;
  sf_plan *pl = r->plans[SF_SLOT_UNET];
  sf_exec ex = enter(p, r);
  s = sf_unet_run(p->unet, &ex, pl, latents, batch, height, width, timesteps, cond, text, tokens, out, d);
  s = leave(p, r, s, sf_unet_graph(p->unet), pl);
  sf_pipeline_release_network(p, SF_NET_UNET);
  return s;
}

/* Images the decoders and encoders accept: sides of at most SF_MAX_IMAGE_SIDE pixels and at most
 * SF_MAX_IMAGE_PIXELS pixels in the batch. Checked before anything is planned, so an absurd
 * size is an argument error, not an attempt at a terabyte workspace. */
#define SF_MAX_IMAGE_SIDE 16384
#define SF_MAX_IMAGE_PIXELS ((size_t)1 << 28)

static sf_status check_image_size(size_t batch, size_t h, size_t w, const char *what, sf_diag *d) {
  if (batch == 0 || h == 0 || w == 0 || h > SF_MAX_IMAGE_SIDE || w > SF_MAX_IMAGE_SIDE || batch > SF_MAX_IMAGE_PIXELS ||
      (double)batch * (double)h * (double)w > (double)SF_MAX_IMAGE_PIXELS)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "%s: %zu image(s) of %zux%zu: sides must be 1..%d pixels and the batch at most %zu pixels", what,
                       batch, w, h, SF_MAX_IMAGE_SIDE, SF_MAX_IMAGE_PIXELS);
  return SF_OK;
}

sf_status sf_engine_decode(sf_pipeline *p, sf_run *r, unsigned decoder, const float *latents, size_t batch,
                           size_t height, size_t width, uint32_t flags, float *image, sf_diag *d) {
  if (decoder != SF_NET_VAE_DECODER && decoder != SF_NET_TAESD_DECODER)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%u is not a decoder", decoder);
  sf_status s = sf_engine_need(p, decoder, d);
  if (s != SF_OK) return s;
  size_t f = sf_engine_scale_factor(p, decoder);
  s = check_image_size(batch, height > SIZE_MAX / f ? SIZE_MAX : height * f, width > SIZE_MAX / f ? SIZE_MAX : width * f,
                       "decode", d);
  if (s != SF_OK) return s;
  if (decoder == SF_NET_VAE_DECODER) {
    if ((s = sf_pipeline_acquire_network(p, SF_NET_VAE_DECODER, &r->ws, d)) != SF_OK) return s;
    sf_plan *pl = r->plans[SF_SLOT_VAE_DECODER];
    sf_exec ex = enter(p, r);
    /* SF_IMAGE_RAW changes nothing here: the KL decoder's own range is [-1, 1]. */
    s = sf_vae_decode(p->vae, &ex, pl, latents, batch, height, width, (flags & SF_LATENTS_UNSCALED) != 0, image, d);
    s = leave(p, r, s, sf_vae_decoder_graph(p->vae), pl);
    sf_pipeline_release_network(p, SF_NET_VAE_DECODER);
    return s;
  }
  sf_plan *pl = r->plans[SF_SLOT_TAESD_DECODER];
  unsigned tf = ((flags & SF_LATENTS_UNSCALED) ? SF_TAESD_LATENTS_UNSCALED : 0) |
                ((flags & SF_IMAGE_RAW) ? SF_TAESD_IMAGE_RAW : 0);
  sf_exec ex = enter(p, r);
  s = sf_taesd_decode(p->taesd, &ex, pl, latents, batch, height, width, tf, image, d);
  return leave(p, r, s, sf_taesd_decoder_graph(p->taesd), pl);
}

sf_status sf_engine_encode_image(sf_pipeline *p, sf_run *r, unsigned encoder, const float *image, size_t batch,
                                 size_t height, size_t width, uint32_t flags, float *mean, float *logvar,
                                 sf_diag *d) {
  if (encoder != SF_NET_VAE_ENCODER && encoder != SF_NET_TAESD_ENCODER)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%u is not an encoder", encoder);
  sf_status s = sf_engine_need(p, encoder, d);
  if (s != SF_OK) return s;
  s = check_image_size(batch, height, width, "encode", d);
  if (s != SF_OK) return s;
  if (encoder == SF_NET_VAE_ENCODER) {
    if ((s = sf_pipeline_acquire_network(p, SF_NET_VAE_ENCODER, &r->ws, d)) != SF_OK) return s;
    sf_plan *pl = r->plans[SF_SLOT_VAE_ENCODER];
    sf_exec ex = enter(p, r);
    s = sf_vae_encode(p->vae, &ex, pl, image, batch, height, width, mean, logvar, d);
    if (s == SF_OK && !(flags & SF_LATENTS_UNSCALED)) {
      const sf_vae_config *vc = &p->vae_cfg;
      size_t f = sf_engine_scale_factor(p, SF_NET_VAE_ENCODER);
      size_t n = batch * vc->latent_channels * (height / f) * (width / f);
      for (size_t i = 0; i < n; i++) mean[i] *= vc->scaling_factor;
    }
    s = leave(p, r, s, sf_vae_encoder_graph(p->vae), pl);
    sf_pipeline_release_network(p, SF_NET_VAE_ENCODER);
    return s;
  }
  if (logvar != NULL) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "TAESD has no log-variance (pass NULL)");
  sf_plan *pl = r->plans[SF_SLOT_TAESD_ENCODER];
  unsigned tf = ((flags & SF_LATENTS_UNSCALED) ? SF_TAESD_LATENTS_UNSCALED : 0) |
                ((flags & SF_IMAGE_RAW) ? SF_TAESD_IMAGE_RAW : 0);
  sf_exec ex = enter(p, r);
  s = sf_taesd_encode(p->taesd, &ex, pl, image, batch, height, width, tf, mean, d);
  return leave(p, r, s, sf_taesd_encoder_graph(p->taesd), pl);
}
