/* Per-element step arithmetic. Each torch tensor op rounds to float32 on its own, so every
 * expression below is the same sequence of float32 operations as the diffusers code, with
 * FMA contraction switched off; scalars that diffusers keeps as 0-d float32 tensors are
 * computed once in float32 in the same order. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_internal.h"

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static float acp_at(const sf_scheduler *s, int64_t t) {
  return t >= 0 ? s->alphas_cumprod[t] : s->final_alpha_cumprod;
}

/* alphas_cumprod[t] as torch indexes the tensor: a negative t counts from the end. Trailing
 * spacing gives t = -1 when numpy's arange with the float step ratio makes one element more
 * (DDIM with 61 of 1000 steps), and diffusers then reads alphas_cumprod[-1].
 * sf_scheduler_set_timesteps keeps every timestep in [-ntrain, ntrain). */
static float acp_index(const sf_scheduler *s, int64_t t) { return s->alphas_cumprod[t < 0 ? t + s->ntrain : t]; }

void sf_sched_step_ddim(sf_scheduler *s, int i, const float *mo, float *x, size_t n) {
  const sf_sched_config *c = &s->cfg;
  int64_t t = s->timesteps_i[i];
  int64_t prev = t - s->ntrain / s->num_inference_steps;
  float a_t = acp_index(s, t);
  float a_prev = acp_at(s, prev);
  float b_t = 1.0f - a_t;
  float sa = sqrtf(a_t), sb = sqrtf(b_t), sa_prev = sqrtf(a_prev);
  /* eta = 0: std_dev_t = 0 * sqrt(variance) = 0 */
  float dir = sqrtf((1.0f - a_prev) - 0.0f);
  float range = (float)c->clip_sample_range;
  for (size_t k = 0; k < n; k++) {
    float x0, eps;
    switch (c->prediction_type) {
    case SF_PRED_EPSILON:
      x0 = (x[k] - sb * mo[k]) / sa;
      eps = mo[k];
      break;
    case SF_PRED_V:
      x0 = sa * x[k] - sb * mo[k];
      eps = sa * mo[k] + sb * x[k];
      break;
    default:
      x0 = mo[k];
      eps = (x[k] - sa * x0) / sb;
      break;
    }
    if (c->clip_sample) x0 = clampf(x0, -range, range);
    x[k] = sa_prev * x0 + dir * eps;
  }
}

/* PLMS (PNDM with skip_prk_steps): Adams-Bashforth combinations of the stored outputs. */
void sf_sched_step_pndm(sf_scheduler *s, int i, const float *mo, float *x, size_t n) {
  const sf_sched_config *c = &s->cfg;
  int ratio = s->ntrain / s->num_inference_steps;
  int64_t t = s->timesteps_i[i];
  int64_t prev = t - ratio;
  if (s->counter != 1) {
    /* ets = ets[-3:] + [model_output] */
    s->ets_head = (s->ets_head + 1) & 3;
    memcpy(s->hist[s->ets_head], mo, n * sizeof(float));
    if (s->n_ets < 4) s->n_ets++;
  } else {
    prev = t;
    t = t + ratio;
  }
  const float *e1 = s->hist[s->ets_head];
  const float *e2 = s->hist[(s->ets_head + 3) & 3];
  const float *e3 = s->hist[(s->ets_head + 2) & 3];
  const float *e4 = s->hist[(s->ets_head + 1) & 3];
  int mode; /* 0: as is, 1: average with the first, 2..4: AB2..AB4 */
  if (s->n_ets == 1 && s->counter == 0) {
    mode = 0;
    memcpy(s->cur_sample, x, n * sizeof(float));
  } else if (s->n_ets == 1 && s->counter == 1) {
    mode = 1;
  } else {
    mode = s->n_ets;
  }
  float a_t = acp_index(s, t);
  float a_prev = acp_at(s, prev);
  float b_t = 1.0f - a_t;
  float b_prev = 1.0f - a_prev;
  float sa = sqrtf(a_t), sb = sqrtf(b_t);
  float sample_coeff = sqrtf(a_prev / a_t);
  float denom = a_t * sqrtf(b_prev) + sqrtf((a_t * b_t) * a_prev);
  float diff = a_prev - a_t;
  const float c24 = (float)(1.0 / 24.0);
  for (size_t k = 0; k < n; k++) {
    float m;
    float xs = x[k];
    switch (mode) {
    case 0:
      m = mo[k];
      break;
    case 1:
      m = (mo[k] + e1[k]) / 2.0f;
      xs = s->cur_sample[k];
      break;
    case 2:
      m = (3.0f * e1[k] - e2[k]) / 2.0f;
      break;
    case 3:
      m = ((23.0f * e1[k] - 16.0f * e2[k]) + 5.0f * e3[k]) / 12.0f;
      break;
    default:
      m = c24 * (((55.0f * e1[k] - 59.0f * e2[k]) + 37.0f * e3[k]) - 9.0f * e4[k]);
      break;
    }
    if (c->prediction_type == SF_PRED_V) m = sa * m + sb * xs;
    x[k] = sample_coeff * xs - (diff * m) / denom;
  }
  s->counter++;
}

void sf_sched_step_euler(sf_scheduler *s, int i, const float *mo, float *x, size_t n) {
  const sf_sched_config *c = &s->cfg;
  float sigma = s->sigmas[i];
  float sigma_hat = sigma * 1.0f; /* s_churn = 0: gamma = 0 */
  float dt = s->sigmas[i + 1] - sigma_hat;
  float vs = sigma * sigma + 1.0f;
  float v_mo = -sigma / sqrtf(vs);
  for (size_t k = 0; k < n; k++) {
    float x0;
    switch (c->prediction_type) {
    case SF_PRED_EPSILON:
      x0 = x[k] - sigma_hat * mo[k];
      break;
    case SF_PRED_V:
      x0 = mo[k] * v_mo + x[k] / vs;
      break;
    default:
      x0 = mo[k];
      break;
    }
    float deriv = (x[k] - x0) / sigma_hat;
    x[k] = x[k] + deriv * dt;
  }
}

void sf_sched_step_euler_a(sf_scheduler *s, int i, const float *mo, float *x, size_t n,
                           const float *noise) {
  const sf_sched_config *c = &s->cfg;
  float sigma = s->sigmas[i];
  float sf = sigma, st = s->sigmas[i + 1];
  float sigma_up = sqrtf(((st * st) * (sf * sf - st * st)) / (sf * sf));
  float sigma_down = sqrtf(st * st - sigma_up * sigma_up);
  float dt = sigma_down - sigma;
  float vs = sigma * sigma + 1.0f;
  float v_mo = -sigma / sqrtf(vs);
  for (size_t k = 0; k < n; k++) {
    float x0 = c->prediction_type == SF_PRED_V ? mo[k] * v_mo + x[k] / vs : x[k] - sigma * mo[k];
    float deriv = (x[k] - x0) / sigma;
    float prev = x[k] + deriv * dt;
    x[k] = prev + noise[k] * sigma_up;
  }
}

static void alpha_sigma(float sigma, float *alpha, float *sig) {
  float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
  *alpha = a;
  *sig = sigma * a;
}

void sf_sched_step_dpm(sf_scheduler *s, int i, const float *mo, float *x, size_t n) {
  const sf_sched_config *c = &s->cfg;
  int last = i == s->nsteps - 1;
  int lower_order_final =
      last && (c->euler_at_final || (c->lower_order_final && s->nsteps < 15) || !c->final_sigma_min);
  /* model_outputs[-1] <- x0 prediction; the previous one moves to [-2] */
  float *tmp = s->hist[0];
  s->hist[0] = s->hist[1];
  s->hist[1] = tmp;
  float *m0 = s->hist[1];
  const float *m1 = s->hist[0];
  {
    float a_s, s_s;
    alpha_sigma(s->sigmas[i], &a_s, &s_s);
    for (size_t k = 0; k < n; k++) {
      switch (c->prediction_type) {
      case SF_PRED_EPSILON:
        m0[k] = (x[k] - s_s * mo[k]) / a_s;
        break;
      case SF_PRED_V:
        m0[k] = a_s * x[k] - s_s * mo[k];
        break;
      default:
        m0[k] = mo[k];
        break;
      }
    }
  }
  float a_t, s_t, a_s0, s_s0;
  alpha_sigma(s->sigmas[i + 1], &a_t, &s_t);
  alpha_sigma(s->sigmas[i], &a_s0, &s_s0);
  float lambda_t = logf(a_t) - logf(s_t);
  float lambda_s0 = logf(a_s0) - logf(s_s0);
  float h = lambda_t - lambda_s0;
  float c1 = s_t / s_s0;
  float c2 = a_t * (expf(-h) - 1.0f);
  if (c->solver_order == 1 || s->lower_order_nums < 1 || lower_order_final) {
    for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] - c2 * m0[k];
  } else {
    float a_s1, s_s1;
    alpha_sigma(s->sigmas[i - 1], &a_s1, &s_s1);
    float lambda_s1 = logf(a_s1) - logf(s_s1);
    float h0 = lambda_s0 - lambda_s1;
    float r0 = h0 / h;
    float inv_r0 = 1.0f / r0;
    float c3 = 0.5f * c2;
    for (size_t k = 0; k < n; k++) {
      float d1 = inv_r0 * (m0[k] - m1[k]);
      x[k] = (c1 * x[k] - c2 * m0[k]) - c3 * d1;
    }
  }
  if (s->lower_order_nums < c->solver_order) s->lower_order_nums++;
}

/* get_scalings_for_boundary_condition_discrete(t) with sigma_data 0.5, in float32 as torch
 * computes it on the int64 timestep tensor times timestep_scaling. */
static void lcm_scalings(const sf_scheduler *s, int64_t t, float *c_skip, float *c_out) {
  float scaled = (float)t * (float)s->cfg.timestep_scaling;
  float den = scaled * scaled + 0.25f;
  *c_skip = (1.0f / den) * 0.25f; /* python 0.25 / tensor = reciprocal * 0.25 */
  *c_out = scaled / sqrtf(den);
}

/* LCMScheduler.step at index i: denoised = c_out*x0 + c_skip*x; then x is replaced by the
 * next step's noised sample (or by denoised at the last step) when update, and denoised is
 * stored when denoised_out is not NULL. */
static void lcm_step(const sf_scheduler *s, int i, const float *mo, float *x, size_t n, const float *noise,
                     float *denoised_out, int update) {
  const sf_sched_config *c = &s->cfg;
  int64_t t = s->timesteps_i[i];
  int64_t prev = i + 1 < s->nsteps ? s->timesteps_i[i + 1] : t;
  float a_t = acp_index(s, t);
  float a_prev = acp_at(s, prev);
  float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
  float c_skip, c_out;
  lcm_scalings(s, t, &c_skip, &c_out);
  float sa = sqrtf(a_t), sb = sqrtf(b_t);
  float sa_prev = sqrtf(a_prev), sb_prev = sqrtf(b_prev);
  float range = (float)c->clip_sample_range;
  int final_step = i == s->num_inference_steps - 1;
  for (size_t k = 0; k < n; k++) {
    float x0;
    switch (c->prediction_type) {
    case SF_PRED_EPSILON:
      x0 = (x[k] - sb * mo[k]) / sa;
      break;
    case SF_PRED_V:
      x0 = sa * x[k] - sb * mo[k];
      break;
    default:
      x0 = mo[k];
      break;
    }
    if (c->clip_sample) x0 = clampf(x0, -range, range);
    float denoised = c_out * x0 + c_skip * x[k];
    if (denoised_out) denoised_out[k] = denoised;
    if (update) x[k] = final_step ? denoised : sa_prev * denoised + sb_prev * noise[k];
  }
}

void sf_sched_step_lcm(sf_scheduler *s, int i, const float *mo, float *x, size_t n,
                       const float *noise) {
  lcm_step(s, i, mo, x, n, noise, NULL, 1);
}

sf_status sf_scheduler_lcm_denoised(const sf_scheduler *s, int i, const float *model_output, const float *sample,
                                    float *denoised, size_t n, sf_diag *d) {
  if (s == NULL || model_output == NULL || sample == NULL || denoised == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: NULL argument");
  if (s->cfg.kind != SF_SCHED_LCM) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: not an LCM scheduler");
  if (i < 0 || i >= s->nsteps)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: index %d outside [0, %d)", i, s->nsteps);
  lcm_step(s, i, model_output, (float *)sample, n, NULL, denoised, 0); /* update 0: sample only read */
  return SF_OK;
}

int sf_scheduler_lcm_scalings(const sf_scheduler *s, int i, float *c_skip, float *c_out) {
  if (s == NULL || s->cfg.kind != SF_SCHED_LCM || i < 0 || i >= s->nsteps) return 0;
  lcm_scalings(s, s->timesteps_i[i], c_skip, c_out);
  return 1;
}

int sf_scheduler_step_draws_noise(const sf_scheduler *s, int i) {
  switch (s->cfg.kind) {
  case SF_SCHED_EULER:
  case SF_SCHED_EULER_A:
    return 1;
  case SF_SCHED_LCM:
    return i != s->num_inference_steps - 1;
  default:
    return 0;
  }
}

void sf_scheduler_scale_model_input(const sf_scheduler *s, int i, const float *x, float *out,
                                    size_t n) {
  if (s->cfg.kind == SF_SCHED_EULER || s->cfg.kind == SF_SCHED_EULER_A) {
    float sigma = s->sigmas[i];
    float den = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = x[k] / den;
  } else if (out != x) {
    memmove(out, x, n * sizeof(float));
  }
}

sf_status sf_scheduler_step(sf_scheduler *s, int i, const float *model_output, float *sample,
                            size_t n, const float *noise, sf_diag *d) {
  if (s == NULL || model_output == NULL || sample == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler step: NULL argument");
  if (s->nsteps == 0)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "scheduler step: set_timesteps was not called");
  if (i < 0 || i >= s->nsteps)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler step: index %d outside [0, %d)", i, s->nsteps);
  if (n != s->latent_count)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler step: %zu values, set_timesteps said %zu",
                       n, s->latent_count);
  int needs_noise = s->cfg.kind == SF_SCHED_EULER_A || (s->cfg.kind == SF_SCHED_LCM && sf_scheduler_step_draws_noise(s, i));
  if (needs_noise && noise == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler step: this step needs its noise draw");
  switch (s->cfg.kind) {
  case SF_SCHED_DDIM:
    sf_sched_step_ddim(s, i, model_output, sample, n);
    break;
  case SF_SCHED_PNDM:
    sf_sched_step_pndm(s, i, model_output, sample, n);
    break;
  case SF_SCHED_EULER:
    sf_sched_step_euler(s, i, model_output, sample, n);
    break;
  case SF_SCHED_EULER_A:
    sf_sched_step_euler_a(s, i, model_output, sample, n, noise);
    break;
  case SF_SCHED_DPMPP_2M:
    sf_sched_step_dpm(s, i, model_output, sample, n);
    break;
  case SF_SCHED_LCM:
    sf_sched_step_lcm(s, i, model_output, sample, n, noise);
    break;
  }
  return SF_OK;
}

void sf_scheduler_add_noise(const sf_scheduler *s, int index, const float *original,
                            const float *noise, float *out, size_t n) {
  switch (s->cfg.kind) {
  case SF_SCHED_EULER:
  case SF_SCHED_EULER_A: {
    float sigma = s->sigmas[index];
    for (size_t k = 0; k < n; k++) out[k] = original[k] + noise[k] * sigma;
    break;
  }
  case SF_SCHED_DPMPP_2M: {
    float a, sg;
    alpha_sigma(s->sigmas[index], &a, &sg);
    for (size_t k = 0; k < n; k++) out[k] = a * original[k] + sg * noise[k];
    break;
  }
  default: {
    float acp = acp_index(s, s->timesteps_i[index]);
    float sa = sqrtf(acp), sb = sqrtf(1.0f - acp);
    for (size_t k = 0; k < n; k++) out[k] = sa * original[k] + sb * noise[k];
    break;
  }
  }
}
