#include "pipeline/request.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/params.h"

#define MAX_SIDE 8192
#define MAX_STEPS 1000
#define MAX_BATCH_COUNT 4096

sf_status sf_request_sched_from_params(const sf_params *params, sf_sched_request *out, sf_diag *d) {
  sf_sched_request_default(out);
  int64_t pred = sf_params_int_or(params, SF_PARAM_PREDICTION_TYPE, SF_PREDICTION_DEFAULT);
  if (pred < SF_PREDICTION_DEFAULT || pred > SF_PREDICTION_SAMPLE)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_PREDICTION_TYPE: %lld is not a sf_prediction",
                       (long long)pred);
  out->prediction = (sf_prediction)pred;
  int64_t spacing = sf_params_int_or(params, SF_PARAM_TIMESTEP_SPACING, SF_SPACING_DEFAULT);
  if (spacing < SF_SPACING_DEFAULT || spacing > SF_SPACING_LINSPACE)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_TIMESTEP_SPACING: %lld is not a sf_timestep_spacing",
                       (long long)spacing);
  out->spacing = (sf_timestep_spacing)spacing;
  if (sf_params_has(params, SF_PARAM_KARRAS_SIGMAS))
    out->karras = sf_params_int_or(params, SF_PARAM_KARRAS_SIGMAS, 0) != 0;
  out->eta = sf_params_float_or(params, SF_PARAM_ETA, 0.0);
  if (!isfinite(out->eta)) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_ETA is not a finite number");
  return SF_OK;
}

/* Whether all n values are finite. */
static int all_finite(const float *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i])) return 0;
  return 1;
}

sf_status sf_request_from_params(const sf_params *params, sf_request *r, sf_diag *d) {
  memset(r, 0, sizeof *r);
  sf_status s = sf_request_sched_from_params(params, &r->sched, d);
  if (s != SF_OK) return s;
  int64_t sampler = sf_params_int_or(params, SF_PARAM_SAMPLER, SF_SAMPLER_DEFAULT);
  if (sampler != SF_SAMPLER_DEFAULT && sf_sampler_kind((sf_sampler)sampler) == 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_SAMPLER: %lld is not a sf_sampler", (long long)sampler);
  r->sched.sampler = (sf_sampler)sampler;

  r->width = sf_params_int_or(params, SF_PARAM_WIDTH, 0);
  r->height = sf_params_int_or(params, SF_PARAM_HEIGHT, 0);
  if (sf_params_has(params, SF_PARAM_WIDTH) && (r->width <= 0 || r->width > MAX_SIDE))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "width %lld: must be from 1 to %d pixels", (long long)r->width,
                       MAX_SIDE);
  if (sf_params_has(params, SF_PARAM_HEIGHT) && (r->height <= 0 || r->height > MAX_SIDE))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "height %lld: must be from 1 to %d pixels", (long long)r->height,
                       MAX_SIDE);
  int64_t steps = sf_params_int_or(params, SF_PARAM_STEPS, 8);
  if (steps < 1 || steps > MAX_STEPS)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "steps %lld: must be from 1 to %d", (long long)steps, MAX_STEPS);
  r->steps = (int)steps;
  r->steps_given = sf_params_has(params, SF_PARAM_STEPS);
  r->guidance_given = sf_params_has(params, SF_PARAM_GUIDANCE_SCALE);
  r->guidance = sf_params_float_or(params, SF_PARAM_GUIDANCE_SCALE, 7.5);
  /* The guidance multiplies float32 values: it must be finite as a float, not only as a double. */
  if (!isfinite(r->guidance) || fabs(r->guidance) > FLT_MAX)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "guidance scale %g is not a finite float", r->guidance);
  r->strength = sf_params_float_or(params, SF_PARAM_STRENGTH, 0.8);
  if (!(r->strength >= 0.0 && r->strength <= 1.0))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "strength %g is outside [0, 1]", r->strength);
  int64_t seed = sf_params_int_or(params, SF_PARAM_SEED, 0);
  r->seed_random = seed == SF_SEED_RANDOM;
  r->seed = (uint64_t)seed;
  int64_t count = sf_params_int_or(params, SF_PARAM_BATCH_COUNT, 1);
  if (count < 1 || count > MAX_BATCH_COUNT)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_BATCH_COUNT %lld: must be from 1 to %d",
                       (long long)count, MAX_BATCH_COUNT);
  r->batch_count = (int)count;
  int64_t decoder = sf_params_int_or(params, SF_PARAM_DECODER, 0);
  if (decoder != 0 && decoder != SF_NET_VAE_DECODER && decoder != SF_NET_TAESD_DECODER)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_DECODER %lld is not a decoder", (long long)decoder);
  r->decoder = (unsigned)decoder;
  int64_t clip_skip = sf_params_int_or(params, SF_PARAM_CLIP_SKIP, 0);
  if (clip_skip < 0 || clip_skip > 1000)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "clip skip %lld: must be 0 or more (1 = the last layer)",
                       (long long)clip_skip);
  r->clip_skip = (int)clip_skip;
  int64_t syntax = sf_params_int_or(params, SF_PARAM_PROMPT_SYNTAX, SF_PROMPT_SYNTAX_PLAIN);
  if (syntax != SF_PROMPT_SYNTAX_PLAIN && syntax != SF_PROMPT_SYNTAX_A1111)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_PROMPT_SYNTAX: %lld is not a sf_prompt_syntax",
                       (long long)syntax);
  r->a1111_syntax = syntax == SF_PROMPT_SYNTAX_A1111;

  r->prompt = sf_params_string_or(params, SF_PARAM_PROMPT, NULL);
  r->negative = sf_params_string_or(params, SF_PARAM_NEGATIVE_PROMPT, NULL);
  r->prompt_embeds = sf_params_floats(params, SF_PARAM_PROMPT_EMBEDS, &r->n_prompt_embeds);
  r->negative_embeds = sf_params_floats(params, SF_PARAM_NEGATIVE_EMBEDS, &r->n_negative_embeds);
  r->latents = sf_params_floats(params, SF_PARAM_LATENTS, &r->n_latents);
  if (r->prompt_embeds && !all_finite(r->prompt_embeds, r->n_prompt_embeds))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_PROMPT_EMBEDS holds NaN or infinite values");
  if (r->negative_embeds && !all_finite(r->negative_embeds, r->n_negative_embeds))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_NEGATIVE_EMBEDS holds NaN or infinite values");
  if (r->latents && !all_finite(r->latents, r->n_latents))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_LATENTS holds NaN or infinite values");
  r->init_rgb = sf_params_init_image(params, &r->init_width, &r->init_height);
  return SF_OK;
}

sf_status sf_request_for_generation(const sf_params *params, sf_request *out, sf_diag *d) {
  sf_status s = sf_request_from_params(params, out, d);
  if (s == SF_OK && out->prompt == NULL && out->prompt_embeds == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "no prompt: set SF_PARAM_PROMPT or SF_PARAM_PROMPT_EMBEDS");
  return s;
}
