/* Public face of the schedulers (sf_schedule_*) and the sampler names. Thin wrappers over
 * sched/scheduler.h: argument checks, config parsing with overrides, and the step-order
 * bookkeeping the stateful multistep samplers rely on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/context.h"
#include "io/json.h"
#include "pipeline/request.h"
#include "sched/sampler.h"
#include "sched/scheduler.h"

struct sf_schedule {
  sf_scheduler *sched;
  int prepared;   /* set_steps succeeded */
  int last_step;  /* index of the last step() since set_steps, -1 before the first */
  size_t latent_count;
};

/* ---- sampler names ------------------------------------------------------------------------- */

const char *sf_sampler_name(sf_sampler sampler) { return sf_sampler_canonical_name(sampler); }

sf_sampler sf_sampler_from_name(const char *name) { return sf_sampler_parse(name); }

/* ---- creation ------------------------------------------------------------------------------- */

sf_status sf_schedule_create(sf_sampler sampler, const char *config_json, const sf_params *overrides,
                             sf_schedule **out_schedule) {
  if (out_schedule == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_create: out_schedule is NULL");
  *out_schedule = NULL;
  if (sampler != SF_SAMPLER_DEFAULT && sf_sampler_kind(sampler) == 0)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_create: %d is not a sf_sampler", (int)sampler);
  sf_diag d = {0};
  /* The same decoding of the overrides, and the same resolution against the config, as a
   * generation's (pipeline/request.c, sched/sampler.c). */
  sf_sched_request req;
  if (sf_request_sched_from_params(overrides, &req, &d) != SF_OK) {
    sf_diag_prefix(&d, "sf_schedule_create: ");
    return sf_ctx_take_diag(NULL, &d);
  }
  req.sampler = sampler;
  sf_json_doc *doc = NULL;
  if (config_json != NULL) {
    doc = sf_json_parse_ex(config_json, strlen(config_json), SF_JSON_ALLOW_NONFINITE, &d);
    if (doc == NULL) {
      sf_diag_prefix(&d, "sf_schedule_create: scheduler config: ");
      return sf_ctx_take_diag(NULL, &d);
    }
  }
  sf_sched_config cfg;
  sf_status st = sf_sched_config_resolve(doc ? sf_json_root(doc) : NULL, &req, &cfg, &d);
  sf_json_free(doc);
  if (st != SF_OK) {
    sf_diag_prefix(&d, "sf_schedule_create: ");
    return sf_ctx_take_diag(NULL, &d);
  }
  sf_schedule *s = calloc(1, sizeof *s);
  if (s == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_schedule_create: out of memory");
  s->sched = sf_scheduler_create(&cfg, &d);
  if (s->sched == NULL) {
    free(s);
    sf_diag_prefix(&d, "sf_schedule_create: ");
    return sf_ctx_take_diag(NULL, &d);
  }
  s->last_step = -1;
  *out_schedule = s;
  return SF_OK;
}

void sf_schedule_destroy(sf_schedule *schedule) {
  if (schedule == NULL) return;
  sf_scheduler_destroy(schedule->sched);
  free(schedule);
}

sf_status sf_schedule_set_steps(sf_schedule *schedule, int steps, size_t latent_count) {
  if (schedule == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_set_steps: schedule is NULL");
  if (steps < 1) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_set_steps: steps %d < 1", steps);
  if (latent_count == 0)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_set_steps: latent_count is 0");
  schedule->prepared = 0;
  schedule->last_step = -1;
  sf_diag d = {0};
  if (sf_scheduler_set_timesteps(schedule->sched, steps, latent_count, &d) != SF_OK) {
    sf_diag_prefix(&d, "sf_schedule_set_steps: ");
    return sf_ctx_take_diag(NULL, &d);
  }
  schedule->prepared = 1;
  schedule->latent_count = latent_count;
  return SF_OK;
}

/* ---- queries --------------------------------------------------------------------------------- */

/* SF_OK when schedule is usable for evaluation i (i < 0: no index to check). */
static sf_status check_index(const sf_schedule *schedule, int i, const char *fn) {
  if (schedule == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: schedule is NULL", fn);
  if (!schedule->prepared)
    return sf_ctx_error(NULL, SF_ERR_BAD_STATE, "%s: call sf_schedule_set_steps first", fn);
  int n = sf_scheduler_num_steps(schedule->sched);
  if (i >= 0 && i >= n)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: evaluation %d outside [0, %d)", fn, i, n);
  return SF_OK;
}

static int is_euler(const sf_schedule *schedule) {
  sf_sched_kind k = sf_scheduler_config(schedule->sched)->kind;
  return k == SF_SCHED_EULER || k == SF_SCHED_EULER_A;
}

int sf_schedule_evaluations(const sf_schedule *schedule) {
  if (check_index(schedule, -1, "sf_schedule_evaluations") != SF_OK) return 0;
  return sf_scheduler_num_steps(schedule->sched);
}

double sf_schedule_timestep(const sf_schedule *schedule, int i) {
  if (i < 0) {
    sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_timestep: evaluation %d is negative", i);
    return NAN;
  }
  if (check_index(schedule, i, "sf_schedule_timestep") != SF_OK) return NAN;
  /* Euler's timesteps are the float32 values the UNet receives; the others are integers. */
  if (is_euler(schedule)) return (double)sf_scheduler_timestep(schedule->sched, i);
  return (double)sf_scheduler_timestep_int(schedule->sched, i);
}

sf_status sf_schedule_sigmas(const sf_schedule *schedule, float *out, size_t capacity, size_t *out_count) {
  if (out_count) *out_count = 0;
  if (out_count == NULL || (out == NULL && capacity > 0))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_sigmas: NULL argument");
  sf_status st = check_index(schedule, -1, "sf_schedule_sigmas");
  if (st != SF_OK) return st;
  const float *sigmas = sf_scheduler_sigmas(schedule->sched);
  if (sigmas == NULL) return SF_OK;
  size_t n = (size_t)sf_scheduler_num_steps(schedule->sched) + 1;
  *out_count = n;
  if (out == NULL && capacity == 0) return SF_OK; /* a size query, as sf_image_copy */
  if (capacity < n)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_sigmas: capacity %zu < %zu sigmas", capacity, n);
  memcpy(out, sigmas, n * sizeof *out);
  return SF_OK;
}

double sf_schedule_init_noise_sigma(const sf_schedule *schedule) {
  /* Euler's value depends on the prepared sigmas (diffusers reads sigmas.max()). */
  if (check_index(schedule, -1, "sf_schedule_init_noise_sigma") != SF_OK) return NAN;
  return (double)sf_scheduler_init_noise_sigma(schedule->sched);
}

static sf_status check_buffers(const sf_schedule *schedule, int i, size_t count, const char *fn) {
  if (i < 0) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: evaluation %d is negative", fn, i);
  sf_status st = check_index(schedule, i, fn);
  if (st != SF_OK) return st;
  /* set_steps sized the multistep history for exactly this many values */
  if (count != schedule->latent_count)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: %zu values, sf_schedule_set_steps said %zu", fn, count,
                        schedule->latent_count);
  return SF_OK;
}

sf_status sf_schedule_scale_input(const sf_schedule *schedule, int i, const float *x, float *out, size_t count) {
  if (x == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_scale_input: NULL argument");
  sf_status st = check_buffers(schedule, i, count, "sf_schedule_scale_input");
  if (st != SF_OK) return st;
  sf_scheduler_scale_model_input(schedule->sched, i, x, out, count);
  return SF_OK;
}

/* diffusers' Euler step also draws a randn that it ignores while s_churn is 0; nothing
 * depends on that draw, so only the samplers whose result uses the noise ask for it. */
int sf_schedule_step_needs_noise(const sf_schedule *schedule, int i) {
  if (i < 0) {
    sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_step_needs_noise: evaluation %d is negative", i);
    return 0;
  }
  if (check_index(schedule, i, "sf_schedule_step_needs_noise") != SF_OK) return 0;
  sf_sched_kind k = sf_scheduler_config(schedule->sched)->kind;
  if (k != SF_SCHED_EULER_A && k != SF_SCHED_LCM) return 0;
  return sf_scheduler_step_draws_noise(schedule->sched, i);
}

/* The multistep samplers (PLMS, DPM++ 2M) keep the previous model outputs, so steps run in
 * order: the first step after set_steps may start anywhere (img2img starts mid-schedule),
 * every later one must be the next index. */
sf_status sf_schedule_step(sf_schedule *schedule, int i, const float *model_output, float *sample, size_t count,
                           const float *noise) {
  if (model_output == NULL || sample == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_step: NULL argument");
  sf_status st = check_buffers(schedule, i, count, "sf_schedule_step");
  if (st != SF_OK) return st;
  if (schedule->last_step >= 0 && i != schedule->last_step + 1)
    return sf_ctx_error(NULL, SF_ERR_BAD_STATE, "sf_schedule_step: step %d after step %d (steps run in order; "
                        "sf_schedule_set_steps restarts)", i, schedule->last_step);
  if (noise == NULL && sf_schedule_step_needs_noise(schedule, i))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_step: step %d needs its noise draw", i);
  sf_diag d = {0};
  if (sf_scheduler_step(schedule->sched, i, model_output, sample, count, noise, &d) != SF_OK) {
    sf_diag_prefix(&d, "sf_schedule_step: ");
    return sf_ctx_take_diag(NULL, &d);
  }
  schedule->last_step = i;
  return SF_OK;
}

/* ---- img2img and tables (1.1) ------------------------------------------------------------- */

int sf_schedule_begin_index(sf_schedule *schedule, double strength) {
  if (check_index(schedule, -1, "sf_schedule_begin_index") != SF_OK) return -1;
  if (!(strength >= 0.0 && strength <= 1.0)) {
    sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_begin_index: strength %g is outside [0, 1]", strength);
    return -1;
  }
  int begin = sf_scheduler_img2img_begin(schedule->sched, strength);
  if (begin >= sf_scheduler_num_steps(schedule->sched)) {
    sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_begin_index: strength %g leaves no denoising step",
                 strength);
    return -1;
  }
  schedule->last_step = -1;
  return begin;
}

sf_status sf_schedule_add_noise(const sf_schedule *schedule, int i, const float *original, const float *noise,
                                float *out, size_t count) {
  if (original == NULL || noise == NULL || out == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_add_noise: NULL argument");
  if (i < 0) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_add_noise: evaluation %d is negative", i);
  sf_status st = check_index(schedule, i, "sf_schedule_add_noise");
  if (st != SF_OK) return st;
  sf_scheduler_add_noise(schedule->sched, i, original, noise, out, count);
  return SF_OK;
}

sf_status sf_schedule_get_table(const sf_schedule *schedule, sf_schedule_table table, float *out, size_t capacity,
                                size_t *out_count) {
  if (out_count) *out_count = 0;
  if (schedule == NULL || out_count == NULL || (out == NULL && capacity > 0))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_get_table: NULL argument");
  const float *src = table == SF_TABLE_BETAS             ? sf_scheduler_betas(schedule->sched)
                     : table == SF_TABLE_ALPHAS_CUMPROD ? sf_scheduler_alphas_cumprod(schedule->sched)
                                                        : NULL;
  if (src == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_get_table: %d is not a sf_schedule_table",
                        (int)table);
  size_t n = (size_t)sf_scheduler_num_train_timesteps(schedule->sched);
  *out_count = n;
  if (out == NULL && capacity == 0) return SF_OK;
  if (capacity < n)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_schedule_get_table: capacity %zu < %zu values", capacity, n);
  memcpy(out, src, n * sizeof *out);
  return SF_OK;
}

double sf_schedule_final_alpha_cumprod(const sf_schedule *schedule) {
  if (schedule == NULL) return NAN;
  return (double)sf_scheduler_final_alpha_cumprod(schedule->sched);
}
