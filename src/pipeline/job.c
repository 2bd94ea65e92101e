/* Text-to-image (and img2img) generation, step by step, with diffusers' arithmetic:
 * prompts -> CLIP embeddings [uncond, cond]; seed -> initial latents from PyTorch's CPU
 * generator; per step: scale_model_input, one batch-2 UNet call, classifier-free
 * guidance, scheduler step; then the VAE (or TAESD) decodes and the image is rounded to
 * RGB8 as diffusers' numpy_to_pil does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/params.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/image.h"
#include "pipeline/pipeline.h"
#include "sched/scheduler.h"
#include "sched/torch_rng.h"
#include "text/tokenizer.h"

#define CLIP_TOKENS 77

struct sf_job {
  sf_pipeline *p;
  sf_scheduler *sched;
  sf_torch_rng rng;
  sf_rng_kernel rng_kernel;
  int cfg;                /* guidance > 1: unconditional pass in the same batch */
  float guidance;
  size_t c, h, w, n;      /* latent channels, rows, columns; n = c*h*w */
  size_t tokens, hidden;
  int step, begin, total; /* schedule indices: the loop runs begin .. total-1 */
  int failed;             /* a step failed or was cancelled: only destroy is valid */
  float *latents;         /* [n] */
  float *text;            /* [cfg ? 2 : 1, tokens, hidden], uncond first */
  float *model_in;        /* [batch, n] */
  float *model_out;       /* [batch, n] */
  float *noise;           /* [n] */
  sf_network decoder;
  char *parameters;       /* A1111-style text for the PNG */
};

/* ---- helpers -------------------------------------------------------------------------------- */

static sf_status job_error(sf_pipeline *p, sf_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sf_status job_error(sf_pipeline *p, sf_status s, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return sf_ctx_error(p->ctx, s, "%s", buf);
}

static const char *a1111_sampler_name(sf_sched_kind kind, int karras) {
  switch (kind) {
    case SF_SCHED_DDIM: return "DDIM";
    case SF_SCHED_PNDM: return "PLMS";
    case SF_SCHED_EULER: return "Euler";
    case SF_SCHED_EULER_A: return "Euler a";
    case SF_SCHED_DPMPP_2M: return karras ? "DPM++ 2M Karras" : "DPM++ 2M";
    case SF_SCHED_LCM: return "LCM";
  }
  return "DDIM";
}

static sf_sched_kind kind_of_sampler(sf_sampler s) {
  switch (s) {
    case SF_SAMPLER_DDIM: return SF_SCHED_DDIM;
    case SF_SAMPLER_PNDM: return SF_SCHED_PNDM;
    case SF_SAMPLER_EULER: return SF_SCHED_EULER;
    case SF_SAMPLER_EULER_A: return SF_SCHED_EULER_A;
    case SF_SAMPLER_DPMPP_2M: return SF_SCHED_DPMPP_2M;
    case SF_SAMPLER_LCM: return SF_SCHED_LCM;
    case SF_SAMPLER_DEFAULT: break;
  }
  return 0;
}

/* Embeddings of one prompt: explicit ones, or tokenised and encoded. */
static sf_status prompt_embeddings(sf_job *j, const sf_params *params, sf_param text_key, sf_param_array embeds_key,
                                   const char *dflt, float *out) {
  sf_pipeline *p = j->p;
  size_t count = 0;
  const float *given = sf_params_floats(params, embeds_key, &count);
  if (given != NULL) {
    if (count != j->tokens * j->hidden)
      return job_error(p, SF_ERR_INVALID_ARGUMENT, "%s has %zu values, expected %zu x %zu",
                       embeds_key == SF_PARAM_PROMPT_EMBEDS ? "SF_PARAM_PROMPT_EMBEDS" : "SF_PARAM_NEGATIVE_EMBEDS",
                       count, j->tokens, j->hidden);
    memcpy(out, given, count * sizeof *out);
    return SF_OK;
  }
  const char *text = sf_params_string_or(params, text_key, dflt);
  if (text == NULL) return job_error(p, SF_ERR_INVALID_ARGUMENT, "no prompt: set SF_PARAM_PROMPT or SF_PARAM_PROMPT_EMBEDS");
  if (p->tokenizer == NULL || p->text == NULL)
    return job_error(p, SF_ERR_BAD_STATE, "the pipeline has no tokenizer/text encoder: pass embeddings instead");
  int clip_skip = (int)sf_params_int_or(params, SF_PARAM_CLIP_SKIP, 0);
  if (clip_skip < 0) return job_error(p, SF_ERR_INVALID_ARGUMENT, "clip skip %d is negative", clip_skip);
  return sf_encode_prompt(p, text, clip_skip, out, j->tokens * j->hidden);
}

/* The scheduler config: the folder's, with the caller's overrides. */
static sf_status make_scheduler(sf_job *j, const sf_params *params, int steps, sf_sched_config *cfg, sf_diag *d) {
  sf_pipeline *p = j->p;
  int64_t sampler = sf_params_int_or(params, SF_PARAM_SAMPLER, SF_SAMPLER_DEFAULT);
  if (sampler < SF_SAMPLER_DEFAULT || sampler > SF_SAMPLER_LCM)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_SAMPLER: %lld is not a sf_sampler", (long long)sampler);
  sf_sched_kind kind = kind_of_sampler((sf_sampler)sampler);
  const sf_component *sc = sf_model_folder_find(p->folder, "scheduler");
  const sf_json *json = sc ? sf_component_config(sc) : NULL;
  if (json != NULL) {
    if (sf_sched_config_from_json(cfg, json, kind, d) != SF_OK) return d->status;
    if (cfg->unknown_class)
      sf_ctx_log(p->ctx, SF_LOG_WARN, "scheduler class '%s' is not supported; sampling with DDIM",
                 sf_json_as_string(sf_json_get(json, "_class_name")) ? sf_json_as_string(sf_json_get(json, "_class_name")) : "?");
  } else {
    sf_sched_config_default(cfg, kind ? kind : SF_SCHED_DDIM);
    /* Without a scheduler folder, SD-1.x's training schedule. */
    cfg->beta_schedule = SF_BETA_SCALED_LINEAR;
    cfg->beta_start = 0.00085;
    cfg->beta_end = 0.012;
    cfg->steps_offset = 1;
    cfg->set_alpha_to_one = 0;
    cfg->clip_sample = 0;
  }
  int64_t pred = sf_params_int_or(params, SF_PARAM_PREDICTION_TYPE, SF_PREDICTION_DEFAULT);
  if (pred < SF_PREDICTION_DEFAULT || pred > SF_PREDICTION_SAMPLE)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_PREDICTION_TYPE: %lld is not a sf_prediction", (long long)pred);
  if (pred == SF_PREDICTION_EPSILON) cfg->prediction_type = SF_PRED_EPSILON;
  if (pred == SF_PREDICTION_V) cfg->prediction_type = SF_PRED_V;
  if (pred == SF_PREDICTION_SAMPLE) cfg->prediction_type = SF_PRED_SAMPLE;
  int64_t spacing = sf_params_int_or(params, SF_PARAM_TIMESTEP_SPACING, SF_SPACING_DEFAULT);
  if (spacing < SF_SPACING_DEFAULT || spacing > SF_SPACING_LINSPACE)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_TIMESTEP_SPACING: %lld is not a sf_timestep_spacing",
                     (long long)spacing);
  if (spacing != SF_SPACING_DEFAULT) cfg->timestep_spacing = (sf_timestep_spacing)spacing;
  if (sf_params_int_or(params, SF_PARAM_KARRAS_SIGMAS, 0)) {
    if (cfg->kind != SF_SCHED_DPMPP_2M && cfg->kind != SF_SCHED_EULER)
      return job_error(p, SF_ERR_UNSUPPORTED, "Karras sigmas are supported with euler and dpm++2m only");
    cfg->use_karras_sigmas = 1;
  }
  double eta = sf_params_float_or(params, SF_PARAM_ETA, 0.0);
  if (eta != 0.0) return job_error(p, SF_ERR_UNSUPPORTED, "unsupported: DDIM eta %g (only 0)", eta);
  j->sched = sf_scheduler_create(cfg, d);
  if (j->sched == NULL) return d->status;
  return sf_scheduler_set_timesteps(j->sched, steps, j->n, d);
}

/* img2img: encode the init image, sample the posterior, noise it to the first timestep. */
static sf_status init_from_image(sf_job *j, const sf_params *params, double strength, sf_diag *d) {
  sf_pipeline *p = j->p;
  size_t iw = 0, ih = 0;
  const uint8_t *rgb = sf_params_init_image(params, &iw, &ih);
  if (ih != j->h * 8 || iw != j->w * 8)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "init image is %zux%zu; the generation is %zux%zu (resize it first)",
                     iw, ih, j->w * 8, j->h * 8);
  int use_taesd = !(p->networks & SF_NET_VAE_ENCODER);
  if (use_taesd && !(p->networks & SF_NET_TAESD_ENCODER))
    return job_error(p, SF_ERR_BAD_STATE, "img2img needs a VAE or TAESD encoder");
  size_t hw = iw * ih;
  float *img = malloc(3 * hw * sizeof *img);
  float *logvar = malloc(j->n * sizeof *logvar);
  if (img == NULL || logvar == NULL) {
    free(img);
    free(logvar);
    return job_error(p, SF_ERR_OUT_OF_MEMORY, "img2img: out of memory");
  }
  /* diffusers' VaeImageProcessor: x/255 then 2x-1, in float32. */
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < hw; i++) img[c * hw + i] = 2.0f * ((float)rgb[i * 3 + c] / 255.0f) - 1.0f;
  sf_status s;
  if (!use_taesd) {
    s = sf_vae_encode(p->vae, p->ctx->pool, &p->cancel, img, 1, ih, iw, j->latents, logvar, d);
    if (s == SF_OK) {
      /* Draw 0: the posterior sample's noise. */
      sf_torch_randn_f32(&j->rng, j->noise, j->n, j->rng_kernel);
      sf_vae_posterior_sample(j->latents, logvar, j->noise, j->n, sf_vae_get_config(p->vae)->scaling_factor,
                              j->latents);
    }
  } else {
    s = sf_taesd_encode(p->taesd, p->ctx->pool, &p->cancel, img, 1, ih, iw, 0, j->latents, d);
  }
  free(img);
  free(logvar);
  if (s != SF_OK) return s;
  j->begin = sf_scheduler_img2img_begin(j->sched, strength);
  if (j->begin >= j->total)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "strength %g leaves no denoising step at %d steps", strength,
                     j->total);
  /* Draw 1: the noise added at the first timestep of the shortened loop. */
  sf_torch_randn_f32(&j->rng, j->noise, j->n, j->rng_kernel);
  sf_scheduler_add_noise(j->sched, j->begin, j->latents, j->noise, j->latents, j->n);
  return SF_OK;
}

/* ---- the public job API --------------------------------------------------------------------- */

void sf_job_destroy(sf_job *job) {
  if (job == NULL) return;
  sf_scheduler_destroy(job->sched);
  free(job->latents);
  free(job->text);
  free(job->model_in);
  free(job->model_out);
  free(job->noise);
  free(job->parameters);
  free(job);
}

static char *make_parameters(const sf_job *j, const sf_params *params, int steps, const sf_sched_config *cfg,
                             uint64_t seed, int seeded) {
  const char *prompt = sf_params_string_or(params, SF_PARAM_PROMPT, "");
  const char *neg = sf_params_string_or(params, SF_PARAM_NEGATIVE_PROMPT, "");
  const char *dir = j->p->folder->dir;
  const char *model = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
  char seed_text[32];
  if (seeded) snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
  else snprintf(seed_text, sizeof seed_text, "explicit latents");
  size_t len = strlen(prompt) + strlen(neg) + strlen(model) + 256;
  char *text = malloc(len);
  if (text == NULL) return NULL;
  snprintf(text, len, "%s\n%s%s%sSteps: %d, Sampler: %s, CFG scale: %g, Seed: %s, Size: %zux%zu, Model: %s", prompt,
           *neg ? "Negative prompt: " : "", neg, *neg ? "\n" : "", steps,
           a1111_sampler_name(cfg->kind, cfg->use_karras_sigmas), j->guidance, seed_text, j->w * 8, j->h * 8, model);
  return text;
}

sf_status sf_job_start(sf_pipeline *p, const sf_params *params, sf_job **out_job) {
  if (out_job) *out_job = NULL;
  if (p == NULL || params == NULL || out_job == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_start: NULL argument");
  if (!(p->networks & SF_NET_UNET)) return job_error(p, SF_ERR_BAD_STATE, "sf_job_start: the pipeline has no UNet");
  int64_t def_w = 512, def_h = 512;
  sf_pipeline_get_int(p, SF_INFO_DEFAULT_WIDTH, &def_w);
  sf_pipeline_get_int(p, SF_INFO_DEFAULT_HEIGHT, &def_h);
  int64_t width = sf_params_int_or(params, SF_PARAM_WIDTH, def_w);
  int64_t height = sf_params_int_or(params, SF_PARAM_HEIGHT, def_h);
  int64_t steps = sf_params_int_or(params, SF_PARAM_STEPS, 8);
  double guidance = sf_params_float_or(params, SF_PARAM_GUIDANCE_SCALE, 7.5);
  double strength = sf_params_float_or(params, SF_PARAM_STRENGTH, 0.8);
  int64_t batch_count = sf_params_int_or(params, SF_PARAM_BATCH_COUNT, 1);
  int64_t decoder = sf_params_int_or(params, SF_PARAM_DECODER, 0);
  if (width <= 0 || height <= 0 || width % 8 || height % 8 || width > 8192 || height > 8192)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "size %lldx%lld: width and height must be positive multiples of 8 (at most 8192)",
                     (long long)width, (long long)height);
  if (steps < 1 || steps > 1000)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "steps %lld: must be from 1 to 1000", (long long)steps);
  if (!isfinite(guidance)) return job_error(p, SF_ERR_INVALID_ARGUMENT, "guidance scale is not a finite number");
  if (!(strength >= 0.0 && strength <= 1.0))
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "strength %g is outside [0, 1]", strength);
  if (batch_count != 1)
    return job_error(p, SF_ERR_UNSUPPORTED, "SF_PARAM_BATCH_COUNT %lld: a job makes one image; run one job per seed",
                     (long long)batch_count);
  if (decoder != 0 && decoder != SF_NET_VAE_DECODER && decoder != SF_NET_TAESD_DECODER)
    return job_error(p, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_DECODER %lld is not a decoder", (long long)decoder);
  if (decoder == 0) decoder = (p->networks & SF_NET_VAE_DECODER) ? SF_NET_VAE_DECODER : SF_NET_TAESD_DECODER;
  if (!(p->networks & decoder)) return job_error(p, SF_ERR_BAD_STATE, "the pipeline has no %s", decoder == SF_NET_VAE_DECODER ? "VAE decoder" : "TAESD decoder");

  sf_job *j = calloc(1, sizeof *j);
  if (j == NULL) return job_error(p, SF_ERR_OUT_OF_MEMORY, "sf_job_start: out of memory");
  j->p = p;
  j->decoder = (sf_network)decoder;
  j->guidance = (float)guidance;
  j->cfg = guidance > 1.0;
  j->c = sf_unet_get_config(p->unet)->in_channels;
  size_t factor = p->vae ? sf_vae_scale_factor(p->vae) : 8;
  j->h = (size_t)height / factor;
  j->w = (size_t)width / factor;
  j->n = j->c * j->h * j->w;
  j->tokens = CLIP_TOKENS;
  j->hidden = sf_unet_get_config(p->unet)->cross_attention_dim;
  if (p->text && sf_clip_text_hidden(p->text) != j->hidden) {
    size_t hidden = j->hidden;
    sf_job_destroy(j);
    return job_error(p, SF_ERR_BAD_MODEL, "text encoder width %zu does not match the UNet's cross-attention width %zu",
                     sf_clip_text_hidden(p->text), hidden);
  }
  size_t batch = j->cfg ? 2 : 1;
  j->latents = malloc(j->n * sizeof(float));
  j->noise = malloc(j->n * sizeof(float));
  j->model_in = malloc(batch * j->n * sizeof(float));
  j->model_out = malloc(batch * j->n * sizeof(float));
  j->text = malloc(batch * j->tokens * j->hidden * sizeof(float));
  if (!j->latents || !j->noise || !j->model_in || !j->model_out || !j->text) {
    sf_job_destroy(j);
    return job_error(p, SF_ERR_OUT_OF_MEMORY, "sf_job_start: out of memory for %lldx%lld", (long long)width,
                     (long long)height);
  }
  atomic_store(&p->cancel, 0);
  sf_diag d = {0};
  sf_sched_config cfg;
  sf_status s = make_scheduler(j, params, (int)steps, &cfg, &d);
  if (s != SF_OK) {
    sf_job_destroy(j);
    return d.status != SF_OK ? sf_ctx_take_diag(p->ctx, &d) : s;
  }
  j->total = sf_scheduler_num_steps(j->sched);
  /* Conditioning: [uncond, cond] as diffusers batches them for guidance. */
  float *cond = j->text + (j->cfg ? j->tokens * j->hidden : 0);
  s = prompt_embeddings(j, params, SF_PARAM_PROMPT, SF_PARAM_PROMPT_EMBEDS, NULL, cond);
  if (s == SF_OK && j->cfg) s = prompt_embeddings(j, params, SF_PARAM_NEGATIVE_PROMPT, SF_PARAM_NEGATIVE_EMBEDS, "", j->text);
  if (s != SF_OK) {
    sf_job_destroy(j);
    return s;
  }
  /* Noise: explicit latents, or the seed through PyTorch's generator. */
  uint64_t seed = (uint64_t)sf_params_int_or(params, SF_PARAM_SEED, 0);
  sf_torch_rng_seed(&j->rng, seed);
  j->rng_kernel = SF_RNG_KERNEL_AVX2;
  size_t count = 0;
  const float *given = sf_params_floats(params, SF_PARAM_LATENTS, &count);
  size_t iw, ih;
  int img2img = sf_params_init_image(params, &iw, &ih) != NULL;
  if (img2img) {
    s = init_from_image(j, params, strength, &d);
    if (s != SF_OK) {
      sf_job_destroy(j);
      return d.status != SF_OK ? sf_ctx_take_diag(p->ctx, &d) : s;
    }
  } else {
    if (given != NULL) {
      if (count != j->n) {
        size_t c = j->c, h = j->h, w = j->w;
        sf_job_destroy(j);
        return job_error(p, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_LATENTS has %zu values; %zux%zux%zu expected", count,
                         c, h, w);
      }
      memcpy(j->latents, given, j->n * sizeof(float));
    } else {
      sf_torch_randn_f32(&j->rng, j->latents, j->n, j->rng_kernel);
    }
    float sigma = sf_scheduler_init_noise_sigma(j->sched);
    for (size_t i = 0; i < j->n; i++) j->latents[i] *= sigma;
  }
  j->step = j->begin;
  j->parameters = make_parameters(j, params, (int)steps, &cfg, seed, given == NULL || img2img);
  if (j->parameters == NULL) {
    sf_job_destroy(j);
    return job_error(p, SF_ERR_OUT_OF_MEMORY, "sf_job_start: out of memory");
  }
  *out_job = j;
  return SF_OK;
}

sf_status sf_job_step(sf_job *j) {
  if (j == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_step: job is NULL");
  sf_pipeline *p = j->p;
  if (j->failed) return job_error(p, SF_ERR_BAD_STATE, "sf_job_step: the job failed or was cancelled");
  if (j->step >= j->total) return job_error(p, SF_ERR_BAD_STATE, "sf_job_step: all %d steps are done", j->total);
  if (atomic_load(&p->cancel)) {
    j->failed = 1;
    return job_error(p, SF_ERR_CANCELLED, "cancelled");
  }
  size_t batch = j->cfg ? 2 : 1, n = j->n;
  int i = j->step;
  sf_scheduler_scale_model_input(j->sched, i, j->latents, j->model_in, n);
  if (j->cfg) memcpy(j->model_in + n, j->model_in, n * sizeof(float));
  float t = sf_scheduler_timestep(j->sched, i);
  float ts[2] = {t, t};
  sf_diag d = {0};
  atomic_fetch_add(&p->ctx->busy, 1);
  sf_status s = sf_unet_run(p->unet, p->ctx->pool, &p->cancel, j->model_in, batch, j->h, j->w, ts, j->text, j->tokens,
                            j->model_out, &d);
  atomic_fetch_sub(&p->ctx->busy, 1);
  if (s != SF_OK) {
    j->failed = 1;
    return sf_ctx_take_diag(p->ctx, &d);
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
  s = sf_scheduler_step(j->sched, i, guided, j->latents, n, noise, &d);
  if (s != SF_OK) {
    j->failed = 1;
    return sf_ctx_take_diag(p->ctx, &d);
  }
  j->step++;
  return SF_OK;
}

size_t sf_job_latent_count(const sf_job *j) { return j ? j->n : 0; }

int sf_job_steps_done(const sf_job *j) { return j ? j->step - j->begin : 0; }
int sf_job_steps_total(const sf_job *j) { return j ? j->total - j->begin : 0; }

sf_status sf_job_latents(const sf_job *j, float *out, size_t count) {
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_latents: NULL argument");
  if (count < j->n)
    return job_error(j->p, SF_ERR_INVALID_ARGUMENT, "sf_job_latents: %zu floats given, %zu needed", count, j->n);
  memcpy(out, j->latents, j->n * sizeof(float));
  return SF_OK;
}

/* diffusers' postprocess: (x/2 + 0.5).clamp(0, 1), then numpy's round-half-even of x*255. */
static void to_rgb8(const float *nchw, size_t H, size_t W, uint8_t *rgb) {
  size_t hw = H * W;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < hw; i++) {
      float v = nchw[c * hw + i] / 2.0f + 0.5f;
      v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
      rgb[i * 3 + c] = (uint8_t)nearbyintf(v * 255.0f);
    }
}

static sf_status decode_to_image(sf_job *j, sf_network decoder, const char *parameters, sf_image **out) {
  sf_pipeline *p = j->p;
  size_t H = j->h * 8, W = j->w * 8;
  float *img = malloc(3 * H * W * sizeof *img);
  if (img == NULL) return job_error(p, SF_ERR_OUT_OF_MEMORY, "decode: out of memory");
  sf_diag d = {0};
  atomic_fetch_add(&p->ctx->busy, 1);
  sf_status s = decoder == SF_NET_VAE_DECODER
                    ? sf_vae_decode(p->vae, p->ctx->pool, &p->cancel, j->latents, 1, j->h, j->w, 0, img, &d)
                    : sf_taesd_decode(p->taesd, p->ctx->pool, &p->cancel, j->latents, 1, j->h, j->w, 0, img, &d);
  atomic_fetch_sub(&p->ctx->busy, 1);
  if (s != SF_OK) {
    free(img);
    return sf_ctx_take_diag(p->ctx, &d);
  }
  sf_image *image = sf_image_new((uint32_t)W, (uint32_t)H, parameters);
  if (image == NULL) {
    free(img);
    return job_error(p, SF_ERR_OUT_OF_MEMORY, "decode: out of memory");
  }
  to_rgb8(img, H, W, image->pixels);
  free(img);
  *out = image;
  return SF_OK;
}

/* SD-1.x latent channels to RGB: a least-squares fit of decoded colour on latents, good
 * enough to see composition while steps run. */
static const float LATENT_RGB[4][3] = {
    {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};

sf_status sf_job_preview(sf_job *j, sf_image **out) {
  if (out) *out = NULL;
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_preview: NULL argument");
  if (j->p->networks & SF_NET_TAESD_DECODER) return decode_to_image(j, SF_NET_TAESD_DECODER, "", out);
  if (j->c != 4) return job_error(j->p, SF_ERR_UNSUPPORTED, "previews without TAESD need 4 latent channels");
  sf_image *image = sf_image_new((uint32_t)j->w, (uint32_t)j->h, "");
  if (image == NULL) return job_error(j->p, SF_ERR_OUT_OF_MEMORY, "preview: out of memory");
  size_t hw = j->h * j->w;
  for (size_t i = 0; i < hw; i++)
    for (size_t c = 0; c < 3; c++) {
      float v = 0;
      for (size_t k = 0; k < 4; k++) v += j->latents[k * hw + i] * LATENT_RGB[k][c];
      v = (v + 1.0f) * 127.5f;
      image->pixels[i * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  *out = image;
  return SF_OK;
}

sf_status sf_job_finish(sf_job *j, sf_image **out) {
  if (out) *out = NULL;
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_finish: NULL argument");
  while (j->step < j->total) {
    sf_status s = sf_job_step(j);
    if (s != SF_OK) return s;
  }
  if (j->failed) return job_error(j->p, SF_ERR_BAD_STATE, "sf_job_finish: the job failed or was cancelled");
  return decode_to_image(j, j->decoder, j->parameters, out);
}

void sf_job_cancel(sf_job *j) {
  if (j != NULL) atomic_store(&j->p->cancel, 1);
}

void sf_pipeline_cancel(sf_pipeline *p) {
  if (p != NULL) atomic_store(&p->cancel, 1);
}

sf_status sf_generate(sf_pipeline *p, const sf_params *params, sf_progress_fn progress, void *user, sf_image **out) {
  if (out) *out = NULL;
  if (out == NULL) return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_generate: out_image is NULL");
  sf_job *j = NULL;
  sf_status s = sf_job_start(p, params, &j);
  if (s != SF_OK) return s;
  while (s == SF_OK && j->step < j->total) {
    s = sf_job_step(j);
    if (s == SF_OK && progress != NULL && progress(user, sf_job_steps_done(j), sf_job_steps_total(j)) != 0) {
      s = job_error(p, SF_ERR_CANCELLED, "cancelled by the progress callback");
    }
  }
  if (s == SF_OK) s = sf_job_finish(j, out);
  sf_job_destroy(j);
  return s;
}
