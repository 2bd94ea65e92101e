/* Text-to-image (and img2img) generation, step by step, with diffusers' arithmetic:
 * prompts -> CLIP embeddings [uncond, cond]; seed -> initial latents from PyTorch's CPU
 * generator; per step: scale_model_input, one batch-2 UNet call, classifier-free
 * guidance, scheduler step (LCM-distilled models: one batch-1 call conditioned on the
 * guidance embedding, no unconditional pass, as LatentConsistencyModelPipeline); then the
 * VAE (or TAESD) decodes and the image is rounded to RGB8 as diffusers' numpy_to_pil does.
 *
 * A job is a run (pipeline/run.h): it owns a run state from start to destroy, so jobs on one
 * pipeline are independent of each other and of building-block calls, and may run
 * concurrently from different threads. */
#include "pipeline/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/engine.h"
#include "io/image.h"
#include "sched/sampler.h"
#include "sched/torch_rng.h"
#include "core/sha256.h"

struct sf_job {
  sf_pipeline *p;
  sf_run *run;
  sf_scheduler *sched;
  sf_torch_rng rng;
  sf_rng_kernel rng_kernel;
  int cfg;                /* guidance > 1 (not LCM): unconditional pass in the same batch */
  float guidance;
  double guidance_scale;  /* as given: an LCM UNet embeds it */
  size_t c, h, w, n;      /* latent channels, rows, columns; n = c*h*w */
  size_t factor;          /* image pixels per latent pixel (the decoder's) */
  size_t tokens, hidden;
  int step, begin, total; /* schedule indices: the loop runs begin .. total-1 */
  int failed;             /* a step failed or was cancelled: only destroy is valid */
  uint64_t seed;
  float *latents;         /* [n] */
  float *text;            /* [cfg ? 2 : 1, tokens, hidden], uncond first */
  float *model_in;        /* [batch, n] */
  float *model_out;       /* [batch, n] */
  float *noise;           /* [n] */
  float *image;           /* the decoded image [3, H, W] in [-1, 1], once finished */
  sf_network decoder;
  char *parameters;       /* A1111-style text for the PNG */
};

/* ---- start ---------------------------------------------------------------------------------- */

/* Conditioning of one prompt, malloc'ed: explicit embeddings (SF_CLIP_TOKENS rows or a multiple),
 * or the text tokenised and encoded (SF_PARAM_PROMPT_SYNTAX). */
static sf_status prompt_embeddings(sf_job *j, const sf_request *rq, const char *text, const float *given,
                                   size_t count, const char *key, float **out, size_t *tokens, sf_diag *d) {
  if (given != NULL) {
    size_t row = SF_CLIP_TOKENS * j->hidden;
    if (count == 0 || count % row != 0)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s has %zu values, expected a multiple of %d x %zu", key, count,
                         SF_CLIP_TOKENS, j->hidden);
    if ((*out = malloc(count * sizeof **out)) == NULL)
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory for %s", key);
    memcpy(*out, given, count * sizeof **out);
    *tokens = count / j->hidden;
    return SF_OK;
  }
  if (j->p->tokenizer == NULL || !(j->p->networks & SF_NET_TEXT_ENCODER))
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no tokenizer/text encoder: pass embeddings instead");
  return sf_engine_encode_conditioning(j->p, j->run, text, rq->clip_skip, rq->a1111_syntax, out, tokens, d);
}

/* [uncond, cond] of one token count: the shorter padded with the encoding of an empty chunk
 * (BOS, EOS...), as A1111 pads prompt and negative prompt to the same length. */
static sf_status conditioning(sf_job *j, const sf_request *rq, sf_diag *d) {
  float *c = NULL, *u = NULL, *empty = NULL;
  size_t tc = 0, tu = 0, empty_tokens = 0, hd = j->hidden;
  sf_status s = prompt_embeddings(j, rq, rq->prompt, rq->prompt_embeds, rq->n_prompt_embeds,
                                  "SF_PARAM_PROMPT_EMBEDS", &c, &tc, d);
  if (s == SF_OK && j->cfg)
    s = prompt_embeddings(j, rq, rq->negative ? rq->negative : "", rq->negative_embeds, rq->n_negative_embeds,
                          "SF_PARAM_NEGATIVE_EMBEDS", &u, &tu, d);
  size_t t = tc > tu ? tc : tu;
  if (s == SF_OK && j->cfg && tc != tu) {
    if (j->p->tokenizer == NULL || !(j->p->networks & SF_NET_TEXT_ENCODER))
      s = sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                      "prompt and negative prompt embeddings have %zu and %zu tokens (pad them to the same count)", tc,
                      tu);
    else
      s = sf_engine_encode_conditioning(j->p, j->run, "", rq->clip_skip, 0, &empty, &empty_tokens, d);
  }
  size_t batch = j->cfg ? 2 : 1;
  if (s == SF_OK && (j->text = malloc(batch * t * hd * sizeof *j->text)) == NULL)
    s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory for %zu x %zu conditioning tokens", batch, t);
  if (s == SF_OK) {
    j->tokens = t;
    for (size_t b = 0; b < batch; b++) {
      const float *src = b + 1 < batch ? u : c;
      size_t have = b + 1 < batch ? tu : tc;
      float *dst = j->text + b * t * hd;
      memcpy(dst, src, have * hd * sizeof *dst);
      for (size_t k = have; k < t; k += SF_CLIP_TOKENS)
        memcpy(dst + k * hd, empty, SF_CLIP_TOKENS * hd * sizeof *dst);
    }
  }
  free(c);
  free(u);
  free(empty);
  return s;
}

/* The scheduler: the folder's config (SD-1.5's without one) with the request's overrides. */
static sf_status make_scheduler(sf_job *j, const sf_request *rq, sf_sched_config *cfg, sf_diag *d) {
  const sf_component *sc = sf_model_folder_find(j->p->folder, "scheduler");
  const sf_json *json = sc ? sf_component_config(sc) : NULL;
  sf_status s = sf_sched_config_resolve(json, &rq->sched, cfg, d);
  if (s != SF_OK) return s;
  if (cfg->unknown_class) {
    const char *cls = sf_json_as_string(sf_json_get(json, "_class_name"));
    sf_ctx_log(j->p->ctx, SF_LOG_WARN, "scheduler class '%s' is not supported; sampling with DDIM", cls ? cls : "?");
  }
  j->sched = sf_scheduler_create(cfg, d);
  if (j->sched == NULL) return d->status;
  return sf_scheduler_set_timesteps(j->sched, rq->steps, j->n, d);
}

/* img2img: encode the init image, sample the posterior, noise it to the first timestep. */
static sf_status init_from_image(sf_job *j, const sf_request *rq, sf_diag *d) {
  sf_pipeline *p = j->p;
  size_t iw = rq->init_width, ih = rq->init_height;
  if (ih != j->h * j->factor || iw != j->w * j->factor)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "init image is %zux%zu; the generation is %zux%zu (resize it first)",
                       iw, ih, j->w * j->factor, j->h * j->factor);
  unsigned encoder = (p->networks & SF_NET_VAE_ENCODER) ? SF_NET_VAE_ENCODER : SF_NET_TAESD_ENCODER;
  if (!(p->networks & encoder)) return sf_diag_set(d, SF_ERR_BAD_STATE, "img2img needs a VAE or TAESD encoder");
  if (sf_engine_scale_factor(p, encoder) != j->factor)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "img2img: the encoder scales by %zu, the decoder by %zu",
                       sf_engine_scale_factor(p, encoder), j->factor);
  size_t hw = iw * ih;
  float *img = malloc(3 * hw * sizeof *img);
  float *logvar = malloc(j->n * sizeof *logvar);
  if (img == NULL || logvar == NULL) {
    free(img);
    free(logvar);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "img2img: out of memory");
  }
  /* diffusers' VaeImageProcessor: x/255 then 2x-1, in float32. */
  const uint8_t *rgb = rq->init_rgb;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < hw; i++) img[c * hw + i] = 2.0f * ((float)rgb[i * 3 + c] / 255.0f) - 1.0f;
  sf_status s;
  if (encoder == SF_NET_VAE_ENCODER) {
    s = sf_engine_encode_image(p, j->run, encoder, img, 1, ih, iw, SF_LATENTS_UNSCALED, j->latents, logvar, d);
    if (s == SF_OK) {
      /* Draw 0: the posterior sample's noise. */
      sf_torch_randn_f32(&j->rng, j->noise, j->n, j->rng_kernel);
      sf_vae_posterior_sample(j->latents, logvar, j->noise, j->n, p->vae_cfg.scaling_factor,
                              j->latents);
    }
  } else {
    s = sf_engine_encode_image(p, j->run, encoder, img, 1, ih, iw, 0, j->latents, NULL, d);
  }
  free(img);
  free(logvar);
  if (s != SF_OK) return s;
  j->begin = sf_scheduler_img2img_begin(j->sched, rq->strength);
  if (j->begin >= j->total)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "strength %g leaves no denoising step at %d steps", rq->strength,
                       j->total);
  /* Draw 1: the noise added at the first timestep of the shortened loop. */
  sf_torch_randn_f32(&j->rng, j->noise, j->n, j->rng_kernel);
  sf_scheduler_add_noise(j->sched, j->begin, j->latents, j->noise, j->latents, j->n);
  return SF_OK;
}

/* A1111's "Model hash" of a single-file checkpoint: the first 10 hex digits of the file's
 * SHA-256, computed once per pipeline (the first image pays about 4 s per GB (portable SHA-256, 250 MB/s on Zen 5); two jobs starting
 * together may both hash, and store the same digits). "" when not a single file or unreadable. */
static void model_hash(sf_pipeline *p, char out[11]) {
  out[0] = '\0';
  if (!p->folder->single_file) return;
  pthread_mutex_lock(&p->runs_lock);
  memcpy(out, p->model_hash, 11);
  pthread_mutex_unlock(&p->runs_lock);
  if (out[0]) return;
  FILE *f = fopen(p->folder->dir, "rb");
  unsigned char *buf = malloc(1 << 16);
  if (f == NULL || buf == NULL) {
    if (f) fclose(f);
    free(buf);
    return;
  }
  sf_sha256 h;
  sf_sha256_init(&h);
  size_t n;
  while ((n = fread(buf, 1, 1 << 16, f)) > 0) sf_sha256_update(&h, buf, n);
  int ok = !ferror(f);
  fclose(f);
  free(buf);
  if (!ok) return;
  uint8_t digest[32];
  char hex[65];
  sf_sha256_final(&h, digest);
  sf_sha256_hex(digest, hex);
  memcpy(out, hex, 10);
  out[10] = '\0';
  pthread_mutex_lock(&p->runs_lock);
  memcpy(p->model_hash, out, 11);
  pthread_mutex_unlock(&p->runs_lock);
}

/* Whether A1111 would read the text differently with its emphasis on (then "Emphasis: None"). */
static int has_syntax(const char *t) {
  return t && (strpbrk(t, "()[]\\") != NULL || strstr(t, "BREAK") != NULL);
}

/* A1111's infotext: prompt (with the loaded LoRAs as <lora:NAME:SCALE> tags), negative prompt,
 * then "Key: value" pairs, A1111's names where it has one. */
static char *make_parameters(const sf_job *j, const sf_request *rq, const sf_sched_config *cfg, int seeded) {
  const char *prompt = rq->prompt ? rq->prompt : "";
  const char *neg = rq->negative ? rq->negative : "";
  const char *dir = j->p->folder->dir;
  const char *model = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
  int model_len = (int)strlen(model);
  if (j->p->folder->single_file && strrchr(model, '.') && strrchr(model, '.') != model)
    model_len = (int)(strrchr(model, '.') - model); /* A1111 names a checkpoint without its extension */
  char seed_text[32];
  if (seeded) snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)j->seed);
  else snprintf(seed_text, sizeof seed_text, "explicit latents");
  /* LoRAs as A1111 writes them in the prompt: " <lora:NAME:SCALE>", NAME the file's base name */
  size_t lora_len = 0;
  for (size_t i = 0; i < sf_lora_count(j->p->loras); i++) lora_len += strlen(sf_lora_path(j->p->loras, i)) + 48;
  char *loras = malloc(lora_len + 1);
  if (loras == NULL) return NULL;
  size_t off = 0;
  loras[0] = '\0';
  for (size_t i = 0; i < sf_lora_count(j->p->loras); i++) {
    const char *path = sf_lora_path(j->p->loras, i), *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path, *dot = strrchr(name, '.');
    int name_len = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    off += (size_t)snprintf(loras + off, lora_len + 1 - off, " <lora:%.*s:%g>", name_len, name,
                            sf_lora_scale(j->p->loras, i));
  }
  /* the optional pairs, in A1111's order */
  char extra[512] = "", hash[11];
  size_t e = 0;
  const char *karras_type =
      cfg->use_karras_sigmas && (cfg->kind == SF_SCHED_EULER || cfg->kind == SF_SCHED_EULER_A) ? ", Schedule type: Karras"
                                                                                               : "";
  model_hash(j->p, hash);
  if (hash[0]) e += (size_t)snprintf(extra + e, sizeof extra - e, ", Model hash: %s", hash);
  if (rq->init_rgb) e += (size_t)snprintf(extra + e, sizeof extra - e, ", Denoising strength: %g", rq->strength);
  if (rq->clip_skip >= 2 && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", Clip skip: %d", rq->clip_skip);
  if (j->decoder == SF_NET_TAESD_DECODER && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", VAE Decoder: TAESD");
  if (rq->init_rgb && !(j->p->networks & SF_NET_VAE_ENCODER) && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", VAE Encoder: TAESD");
  if (!rq->a1111_syntax && (has_syntax(prompt) || has_syntax(neg)) && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", Emphasis: None");
  size_t len = strlen(prompt) + strlen(neg) + strlen(model) + off + sizeof extra + 256;
  char *text = malloc(len);
  if (text == NULL) {
    free(loras);
    return NULL;
  }
  snprintf(text, len, "%s%s\n%s%s%sSteps: %d, Sampler: %s%s, CFG scale: %g, Seed: %s, Size: %zux%zu, Model: %.*s%s",
           prompt, loras, *neg ? "Negative prompt: " : "", neg, *neg ? "\n" : "", rq->steps,
           sf_sched_a1111_name(cfg->kind, cfg->use_karras_sigmas), karras_type, j->guidance, seed_text,
           j->w * j->factor, j->h * j->factor, model_len, model, extra);
  free(loras);
  return text;
}

/* A seed for SF_SEED_RANDOM: from the OS's entropy pool, else the clock. */
static uint64_t random_seed(void) {
  uint64_t seed = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  int got = f != NULL && fread(&seed, sizeof seed, 1, f) == 1;
  if (f) fclose(f);
  if (!got) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
  }
  /* Keep it a valid non-negative int64 so it round-trips through SF_PARAM_SEED and A1111. */
  return seed & 0x7fffffffffffffffull;
}

void sf_job_free(sf_job *job) {
  if (job == NULL) return;
  sf_run_release(job->run);
  sf_scheduler_destroy(job->sched);
  free(job->latents);
  free(job->text);
  free(job->model_in);
  free(job->model_out);
  free(job->noise);
  free(job->image);
  free(job->parameters);
  free(job);
}

static sf_status job_start(sf_job *j, const sf_request *request, int64_t seed_offset, sf_diag *d) {
  sf_pipeline *p = j->p;
  /* What the caller left unset takes the model's defaults (LCM: 4 steps, guidance 8). */
  sf_request with_defaults = *request;
  sf_engine_request_defaults(p, &with_defaults);
  const sf_request *rq = &with_defaults;
  sf_status need = sf_engine_need(p, SF_NET_UNET, d);
  if (need != SF_OK) return need;
  unsigned decoder = rq->decoder;
  if (decoder == 0) decoder = (p->networks & SF_NET_VAE_DECODER) ? SF_NET_VAE_DECODER : SF_NET_TAESD_DECODER;
  if (!(p->networks & decoder))
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no %s",
                       decoder == SF_NET_VAE_DECODER ? "VAE decoder" : "TAESD decoder");
  j->decoder = (sf_network)decoder;
  j->factor = sf_engine_scale_factor(p, decoder);
  const sf_unet_config *uc = &p->unet_cfg;
  if (decoder == SF_NET_VAE_DECODER && p->vae_cfg.latent_channels != uc->in_channels)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "the VAE has %zu latent channels, the UNet takes %zu",
                       p->vae_cfg.latent_channels, uc->in_channels);

  /* Size: the caller's, else the init image's, else the model's; a multiple of what the
   * decoder and the UNet's down-samplings need. */
  int64_t dflt = sf_engine_default_size(p);
  int64_t width = rq->width ? rq->width : rq->init_rgb ? (int64_t)rq->init_width : dflt;
  int64_t height = rq->height ? rq->height : rq->init_rgb ? (int64_t)rq->init_height : dflt;
  size_t multiple = j->factor * sf_engine_unet_multiple(p);
  if (width <= 0 || height <= 0 || width % (int64_t)multiple || height % (int64_t)multiple)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "size %lldx%lld: width and height must be multiples of %zu for this model (the decoder "
                       "scales by %zu, the UNet halves the latents %zu times; SF_INFO_SIZE_MULTIPLE)",
                       (long long)width, (long long)height, multiple, j->factor, (size_t)uc->n_downsamplers);

  j->guidance = (float)rq->guidance;
  j->guidance_scale = rq->guidance;
  j->cfg = sf_engine_uses_cfg(p, rq->guidance);
  if (!j->cfg && sf_engine_is_lcm(p) && ((rq->negative && *rq->negative) || rq->negative_embeds))
    sf_ctx_log(p->ctx, SF_LOG_INFO, "LCM model: the negative prompt is not used (no unconditional batch)");
  j->c = uc->in_channels;
  j->h = (size_t)height / j->factor;
  j->w = (size_t)width / j->factor;
  j->n = j->c * j->h * j->w;
  j->hidden = uc->cross_attention_dim;
  if ((p->networks & SF_NET_TEXT_ENCODER) && sf_engine_text_hidden(p) != j->hidden)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "text encoder width %zu does not match the UNet's cross-attention width %zu",
                       sf_engine_text_hidden(p), j->hidden);
  size_t batch = j->cfg ? 2 : 1;
  j->latents = malloc(j->n * sizeof(float));
  j->noise = malloc(j->n * sizeof(float));
  j->model_in = malloc(batch * j->n * sizeof(float));
  j->model_out = malloc(batch * j->n * sizeof(float));
  if (!j->latents || !j->noise || !j->model_in || !j->model_out)
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory for %lldx%lld", (long long)width, (long long)height);

  sf_sched_config cfg;
  sf_status s = make_scheduler(j, rq, &cfg, d);
  if (s != SF_OK) return s;
  j->total = sf_scheduler_num_steps(j->sched);
  /* Conditioning: [uncond, cond] as diffusers batches them for guidance. */
  s = conditioning(j, rq, d);
  if (s != SF_OK) return s;
  /* Noise: explicit latents, or the seed through PyTorch's generator. */
  j->seed = (rq->seed_random ? random_seed() : rq->seed) + (uint64_t)seed_offset;
  sf_torch_rng_seed(&j->rng, j->seed);
  j->rng_kernel = SF_RNG_KERNEL_AVX2;
  if (rq->init_rgb != NULL) {
    s = init_from_image(j, rq, d);
    if (s != SF_OK) return s;
  } else {
    if (rq->latents != NULL) {
      if (rq->n_latents != j->n)
        return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_LATENTS has %zu values; %zux%zux%zu expected",
                           rq->n_latents, j->c, j->h, j->w);
      memcpy(j->latents, rq->latents, j->n * sizeof(float));
    } else {
      sf_torch_randn_f32(&j->rng, j->latents, j->n, j->rng_kernel);
    }
    float sigma = sf_scheduler_init_noise_sigma(j->sched);
    for (size_t i = 0; i < j->n; i++) j->latents[i] *= sigma;
  }
  j->step = j->begin;
  j->parameters = make_parameters(j, rq, &cfg, rq->latents == NULL || rq->init_rgb != NULL);
  if (j->parameters == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
  return SF_OK;
}

sf_status sf_job_create(sf_pipeline *p, const sf_request *rq, int64_t seed_offset, sf_job **out, sf_diag *d) {
  *out = NULL;
  sf_job *j = calloc(1, sizeof *j);
  if (j == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
  j->p = p;
  /* The run (and its cancel token) exists from here on: a cancel from now on is not lost. */
  sf_status s = sf_run_acquire(p, &j->run, d);
  if (s == SF_OK) s = job_start(j, rq, seed_offset, d);
  if (s != SF_OK) {
    sf_job_free(j);
    return s;
  }
  *out = j;
  return SF_OK;
}

/* ---- steps ---------------------------------------------------------------------------------- */

sf_status sf_job_run_step(sf_job *j, sf_diag *d) {
  if (j->failed) return sf_diag_set(d, SF_ERR_BAD_STATE, "the job failed or was cancelled");
  if (j->step >= j->total) return sf_diag_set(d, SF_ERR_BAD_STATE, "all %d steps are done", j->total - j->begin);
  if (atomic_load(&j->run->cancel)) {
    j->failed = 1;
    return sf_diag_set(d, SF_ERR_CANCELLED, "cancelled");
  }
  size_t batch = j->cfg ? 2 : 1, n = j->n;
  int i = j->step;
  sf_scheduler_scale_model_input(j->sched, i, j->latents, j->model_in, n);
  if (j->cfg) memcpy(j->model_in + n, j->model_in, n * sizeof(float));
  float t = sf_scheduler_timestep(j->sched, i);
  float ts[2] = {t, t};
  sf_status s = sf_engine_unet(j->p, j->run, j->model_in, batch, j->h, j->w, ts, j->guidance_scale, j->text, j->tokens,
                               j->model_out, d);
  if (s != SF_OK) {
    j->failed = 1;
    return s;
  }
  float *guided = j->model_out;
  if (j->cfg) {
    /* noise_uncond + g * (noise_text - noise_uncond), in float32 as torch does it. */
    const float *un = j->model_out, *tx = j->model_out + n;
    float g = j->guidance;
    for (size_t k = 0; k < n; k++) {
      float diff = tx[k] - un[k];
      float scaled = g * diff;
      guided[k] = un[k] + scaled;
    }
  }
  const float *noise = NULL;
  if (sf_scheduler_step_draws_noise(j->sched, i)) {
    sf_torch_randn_f32(&j->rng, j->noise, n, j->rng_kernel);
    noise = j->noise;
  }
  s = sf_scheduler_step(j->sched, i, guided, j->latents, n, noise, d);
  if (s != SF_OK) {
    j->failed = 1;
    return s;
  }
  j->step++;
  return SF_OK;
}

int sf_job_done(const sf_job *j) { return j->step - j->begin; }
int sf_job_total(const sf_job *j) { return j->total - j->begin; }
size_t sf_job_count(const sf_job *j) { return j->n; }
const float *sf_job_current_latents(const sf_job *j) { return j->latents; }
uint64_t sf_job_used_seed(const sf_job *j) { return j->seed; }
void sf_job_request_cancel(sf_job *j) { atomic_store(&j->run->cancel, 1); }
int sf_job_cancelled(const sf_job *j) { return atomic_load(&j->run->cancel) != 0; }

/* ---- images --------------------------------------------------------------------------------- */

/* diffusers' postprocess: (x/2 + 0.5).clamp(0, 1) as float ("np" output); then numpy's
 * round-half-even of x*255 for RGB8. */
static float to_unit(float x) {
  float v = x / 2.0f + 0.5f;
  return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static int all_finite(const float *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i])) return 0;
  return 1;
}

/* Decodes the current latents with decoder into a new float image [3, H, W] (in [-1, 1]). */
static sf_status decode(sf_job *j, sf_network decoder, float **out, size_t *H, size_t *W, sf_diag *d) {
  size_t f = sf_engine_scale_factor(j->p, decoder);
  *H = j->h * f;
  *W = j->w * f;
  float *img = malloc(3 * *H * *W * sizeof *img);
  if (img == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "decode: out of memory");
  sf_status s = sf_engine_decode(j->p, j->run, decoder, j->latents, 1, j->h, j->w, 0, img, d);
  if (s == SF_OK && !all_finite(img, 3 * *H * *W))
    s = sf_diag_set(d, SF_ERR_INTERNAL, "the decoder produced NaN or infinite values (the model's weights or the "
                                        "latents overflow in float32)");
  if (s != SF_OK) {
    free(img);
    return s;
  }
  *out = img;
  return SF_OK;
}

static sf_image *to_image(const float *img, size_t H, size_t W, const char *parameters) {
  sf_image *image = sf_image_new((uint32_t)W, (uint32_t)H, parameters);
  if (image == NULL) return NULL;
  size_t hw = H * W;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < hw; i++) image->pixels[i * 3 + c] = (uint8_t)nearbyintf(to_unit(img[c * hw + i]) * 255.0f);
  return image;
}

/* SD-1.x latent channels to RGB: a least-squares fit of decoded colour on latents, good
 * enough to see composition while steps run. */
static const float LATENT_RGB[4][3] = {
    {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};

sf_status sf_job_make_preview(sf_job *j, sf_image **out, sf_diag *d) {
  *out = NULL;
  if (j->p->networks & SF_NET_TAESD_DECODER) {
    float *img = NULL;
    size_t H, W;
    sf_status s = decode(j, SF_NET_TAESD_DECODER, &img, &H, &W, d);
    if (s != SF_OK) return s;
    *out = to_image(img, H, W, "");
    free(img);
    return *out ? SF_OK : sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "preview: out of memory");
  }
  if (j->c != 4) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "previews without TAESD need 4 latent channels");
  sf_image *image = sf_image_new((uint32_t)j->w, (uint32_t)j->h, "");
  if (image == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "preview: out of memory");
  size_t hw = j->h * j->w;
  for (size_t i = 0; i < hw; i++)
    for (size_t c = 0; c < 3; c++) {
      float v = 0;
      for (size_t k = 0; k < 4; k++) v += j->latents[k * hw + i] * LATENT_RGB[k][c];
      v = (v + 1.0f) * 127.5f;
      image->pixels[i * 3 + c] = (uint8_t)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
    }
  *out = image;
  return SF_OK;
}

sf_status sf_job_run_finish(sf_job *j, sf_image **out, sf_diag *d) {
  if (out) *out = NULL;
  while (j->step < j->total) {
    sf_status s = sf_job_run_step(j, d);
    if (s != SF_OK) return s;
  }
  if (j->failed) return sf_diag_set(d, SF_ERR_BAD_STATE, "the job failed or was cancelled");
  size_t H, W;
  if (j->image == NULL) {
    sf_status s = decode(j, j->decoder, &j->image, &H, &W, d);
    if (s != SF_OK) return s;
  }
  H = j->h * j->factor;
  W = j->w * j->factor;
  if (out == NULL) return SF_OK;
  *out = to_image(j->image, H, W, j->parameters);
  return *out ? SF_OK : sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "decode: out of memory");
}

sf_status sf_job_float_image(const sf_job *j, int nhwc, float *out, size_t count, sf_diag *d) {
  if (j->image == NULL)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "the job has no image yet (call sf_job_finish first)");
  size_t H = j->h * j->factor, W = j->w * j->factor, hw = H * W;
  if (count < 3 * hw) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%zu floats given, %zu needed", count, 3 * hw);
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < hw; i++) out[nhwc ? i * 3 + c : c * hw + i] = to_unit(j->image[c * hw + i]);
  return SF_OK;
}

size_t sf_job_image_floats(const sf_job *j) { return 3 * j->h * j->factor * j->w * j->factor; }
sf_pipeline *sf_job_pipeline(const sf_job *j) { return j->p; }
