/* Scheduler object, training tables (betas, alphas_cumprod) and timestep/sigma tables. The
 * per-step arithmetic is in sched_step.c. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_internal.h"

#define SF_PI_D 3.14159265358979323846

/* torch.linspace(start, end, steps, dtype=float32) on CPU: float32 step, the first half
 * counted up from start and the second half down from end, and inside each 8-wide vector
 * chunk the values built as base + k*step (the vectorised kernel's arange); the last
 * steps % 16 values go through the scalar lambda. torch's AVX2 build contracted the vector
 * lambda's mul+add pairs into FMAs: with them the SD betas/alphas_cumprod are bit-exact. */
static void torch_linspace_f32(double start_d, double end_d, int steps, float *out) {
  const float start = (float)start_d, end = (float)end_d;
  if (steps == 1) {
    out[0] = start;
    return;
  }
  const float step = (end - start) / (float)(steps - 1);
  const int halfway = steps / 2;
  int i = 0;
  for (; i + 16 <= steps; i += 8) { /* two 8-wide vectors per iteration in torch */
    float base = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
    for (int k = 0; k < 8; k++) out[i + k] = fmaf((float)k, step, base);
    i += 8;
    base = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
    for (int k = 0; k < 8; k++) out[i + k] = fmaf((float)k, step, base);
  }
  for (; i < steps; i++)
    out[i] = i < halfway ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

static double alpha_bar_cosine(double t) {
  double c = cos((t + 0.008) / 1.008 * SF_PI_D / 2.0);
  return c * c;
}

/* diffusers rescale_zero_terminal_snr, float32 torch ops (cumprod accumulates in double). */
static int rescale_zero_terminal_snr(float *betas, int n) {
  float *abs_ = malloc((size_t)n * sizeof *abs_);
  if (abs_ == NULL) return -1;
  double acc = 1.0;
  for (int i = 0; i < n; i++) {
    acc *= (double)(1.0f - betas[i]);
    abs_[i] = sqrtf((float)acc);
  }
  float a0 = abs_[0], aT = abs_[n - 1];
  for (int i = 0; i < n; i++) abs_[i] -= aT;
  float scale = a0 / (a0 - aT);
  for (int i = 0; i < n; i++) abs_[i] *= scale;
  float prev = 0.0f;
  for (int i = 0; i < n; i++) {
    float bar = abs_[i] * abs_[i];
    float alpha = i == 0 ? bar : bar / prev;
    prev = bar;
    betas[i] = 1.0f - alpha;
  }
  free(abs_);
  return 0;
}

sf_scheduler *sf_scheduler_create(const sf_sched_config *c, sf_diag *d) {
  if (c == NULL || c->kind < SF_SCHED_DDIM || c->kind > SF_SCHED_LCM || c->num_train_timesteps < 2) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: invalid config");
    return NULL;
  }
  sf_scheduler *s = calloc(1, sizeof *s);
  if (s == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    return NULL;
  }
  s->cfg = *c;
  int n = s->ntrain = c->num_train_timesteps;
  s->betas = malloc((size_t)n * sizeof(float));
  s->alphas_cumprod = malloc((size_t)n * sizeof(float));
  if (s->betas == NULL || s->alphas_cumprod == NULL) {
    sf_scheduler_destroy(s);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    return NULL;
  }
  switch (c->beta_schedule) {
  case SF_BETA_LINEAR:
    torch_linspace_f32(c->beta_start, c->beta_end, n, s->betas);
    break;
  case SF_BETA_SCALED_LINEAR:
    torch_linspace_f32(pow(c->beta_start, 0.5), pow(c->beta_end, 0.5), n, s->betas);
    for (int i = 0; i < n; i++) s->betas[i] = s->betas[i] * s->betas[i];
    break;
  case SF_BETA_SQUAREDCOS_CAP_V2:
    for (int i = 0; i < n; i++) {
      double t1 = (double)i / n, t2 = (double)(i + 1) / n;
      double b = 1.0 - alpha_bar_cosine(t2) / alpha_bar_cosine(t1);
      s->betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
    break;
  }
  if (c->rescale_betas_zero_snr && rescale_zero_terminal_snr(s->betas, n) != 0) {
    sf_scheduler_destroy(s);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    return NULL;
  }
  /* torch.cumprod on CPU accumulates float32 in double and rounds each prefix */
  double acc = 1.0;
  for (int i = 0; i < n; i++) {
    acc *= (double)(1.0f - s->betas[i]);
    s->alphas_cumprod[i] = (float)acc;
  }
  s->final_alpha_cumprod = c->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
  if (c->rescale_betas_zero_snr &&
      (c->kind == SF_SCHED_EULER || c->kind == SF_SCHED_EULER_A || c->kind == SF_SCHED_DPMPP_2M)) {
    /* these classes avoid an infinite sigma at the terminal step */
    s->alphas_cumprod[n - 1] = 0x1p-24f;
  }
  s->init_noise_sigma = 1.0f;
  return s;
}

static void free_steps(sf_scheduler *s) {
  free(s->timesteps_i);
  free(s->timesteps_f);
  free(s->sigmas);
  s->timesteps_i = NULL;
  s->timesteps_f = NULL;
  s->sigmas = NULL;
  for (int i = 0; i < 4; i++) {
    free(s->hist[i]);
    s->hist[i] = NULL;
  }
  free(s->cur_sample);
  s->cur_sample = NULL;
  s->nsteps = 0;
}

void sf_scheduler_destroy(sf_scheduler *s) {
  if (s == NULL) return;
  free_steps(s);
  free(s->betas);
  free(s->alphas_cumprod);
  free(s);
}

const sf_sched_config *sf_scheduler_config(const sf_scheduler *s) { return &s->cfg; }
int sf_scheduler_num_train_timesteps(const sf_scheduler *s) { return s->ntrain; }
const float *sf_scheduler_betas(const sf_scheduler *s) { return s->betas; }
const float *sf_scheduler_alphas_cumprod(const sf_scheduler *s) { return s->alphas_cumprod; }
float sf_scheduler_final_alpha_cumprod(const sf_scheduler *s) { return s->final_alpha_cumprod; }

/* Allocates the int/float timestep arrays (and sigmas when with_sigmas). */
static sf_status alloc_steps(sf_scheduler *s, int nsteps, int with_sigmas, sf_diag *d) {
  s->nsteps = nsteps;
  s->timesteps_i = calloc((size_t)nsteps, sizeof(int64_t));
  s->timesteps_f = calloc((size_t)nsteps, sizeof(float));
  if (with_sigmas) s->sigmas = calloc((size_t)nsteps + 1, sizeof(float));
  if (s->timesteps_i == NULL || s->timesteps_f == NULL || (with_sigmas && s->sigmas == NULL))
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
  return SF_OK;
}

/* float32 ((1 - acp) / acp) ** 0.5 over the training steps */
static float *train_sigmas(const sf_scheduler *s) {
  float *sg = malloc((size_t)s->ntrain * sizeof *sg);
  if (sg == NULL) return NULL;
  for (int t = 0; t < s->ntrain; t++) {
    float a = s->alphas_cumprod[t];
    sg[t] = sqrtf((1.0f - a) / a);
  }
  return sg;
}

/* A computed timestep as an integer; NaN or a value far outside any schedule becomes -2, which
 * the check at the end of set_timesteps refuses (a plain cast would be undefined behaviour). */
static int64_t timestep_i64(double x) { return x >= -1.0 && x <= 1e9 ? (int64_t)x : -2; }

/* The sigma-based samplers need every training sigma finite (alphas_cumprod > 0), and
 * Karras sigmas need them positive too (their log is taken): a config such as beta_start 0
 * would otherwise give NaN timesteps and NaN samples. */
static sf_status check_train_sigmas(const sf_scheduler *s, const float *tsig, sf_diag *d) {
  for (int t = 0; t < s->ntrain; t++) {
    if (!isfinite(tsig[t]) || tsig[t] < 0.0f)
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "scheduler config: training sigma %d is %g (alphas_cumprod %g): this sampler needs every "
                         "sigma finite (check beta_start, beta_end, beta_schedule)",
                         t, (double)tsig[t], (double)s->alphas_cumprod[t]);
    if (s->cfg.use_karras_sigmas && !(tsig[t] > 0.0f))
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "scheduler config: training sigma %d is 0 (beta_start %g): Karras sigmas need every sigma "
                         "positive",
                         t, s->cfg.beta_start);
  }
  return SF_OK;
}

/* The integer "leading"/"trailing"/"linspace" schedule of DDIM (descending). */
sf_status sf_sched_timesteps_ddim_like(sf_scheduler *s, int n, sf_diag *d) {
  const sf_sched_config *c = &s->cfg;
  int T = s->ntrain;
  if (c->timestep_spacing == SF_SPACING_TRAILING) {
    double ratio = (double)T / n;
    int len = sf_np_arange_len(T, 0, -ratio);
    double *a = malloc((size_t)(len > 0 ? len : 1) * sizeof *a);
    if (a == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    sf_np_arange(T, 0, -ratio, a, len);
    sf_status st = alloc_steps(s, len, 0, d);
    if (st == SF_OK)
      for (int i = 0; i < len; i++) s->timesteps_i[i] = (int64_t)rint(a[i]) - 1;
    free(a);
    return st;
  }
  sf_status st = alloc_steps(s, n, 0, d);
  if (st != SF_OK) return st;
  if (c->timestep_spacing == SF_SPACING_LINSPACE) {
    double *a = malloc((size_t)n * sizeof *a);
    if (a == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    sf_np_linspace(0, T - 1, n, 1, a);
    for (int i = 0; i < n; i++) s->timesteps_i[i] = (int64_t)rint(a[n - 1 - i]);
    free(a);
  } else {
    int ratio = T / n;
    for (int i = 0; i < n; i++) s->timesteps_i[i] = (int64_t)(n - 1 - i) * ratio + c->steps_offset;
  }
  return SF_OK;
}

sf_status sf_sched_timesteps_pndm(sf_scheduler *s, int n, sf_diag *d) {
  const sf_sched_config *c = &s->cfg;
  int T = s->ntrain;
  int64_t *asc = malloc((size_t)n * sizeof *asc); /* self._timesteps, ascending */
  double *a = malloc((size_t)(n + 2) * sizeof *a);
  if (asc == NULL || a == NULL) {
    free(asc);
    free(a);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
  }
  int m = n;
  if (c->timestep_spacing == SF_SPACING_LINSPACE) {
    sf_np_linspace(0, T - 1, n, 1, a);
    for (int i = 0; i < n; i++) asc[i] = (int64_t)rint(a[i]);
  } else if (c->timestep_spacing == SF_SPACING_LEADING) {
    int ratio = T / n;
    for (int i = 0; i < n; i++) asc[i] = (int64_t)i * ratio + c->steps_offset;
  } else {
    double ratio = (double)T / n;
    int len = sf_np_arange_len(T, 0, -ratio);
    if (len != n) {
      free(asc);
      free(a);
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler: %d trailing steps give %d timesteps", n, len);
    }
    sf_np_arange(T, 0, -ratio, a, len);
    for (int i = 0; i < n; i++) asc[i] = (int64_t)rint(a[n - 1 - i]) - 1;
  }
  free(a);
  /* plms_timesteps = [_ts[:-1], _ts[-2:-1], _ts[-1:]] reversed: the second-to-last training
   * timestep appears twice (2nd and 3rd entry after reversal) */
  int len = m >= 2 ? m + 1 : 1;
  sf_status st = alloc_steps(s, len, 0, d);
  if (st == SF_OK) {
    int k = 0;
    int64_t *tmp = s->timesteps_i;
    for (int i = 0; i < m - 1; i++) tmp[k++] = asc[i];
    if (m >= 2) tmp[k++] = asc[m - 2];
    tmp[k++] = asc[m - 1];
    for (int i = 0; i < len / 2; i++) {
      int64_t t = tmp[i];
      tmp[i] = tmp[len - 1 - i];
      tmp[len - 1 - i] = t;
    }
  }
  free(asc);
  return st;
}

static sf_status finish_sigmas(sf_scheduler *s, const double *sig, int len, const float *tsig) {
  for (int i = 0; i < len; i++) s->sigmas[i] = (float)sig[i];
  /* final_sigmas_type: "sigma_min" = the t=0 training sigma, else 0 */
  s->sigmas[len] = s->cfg.final_sigma_min ? tsig[0] : 0.0f;
  return SF_OK;
}

sf_status sf_sched_timesteps_euler(sf_scheduler *s, int n, sf_diag *d) {
  const sf_sched_config *c = &s->cfg;
  int T = s->ntrain;
  int len = n;
  if (c->timestep_spacing == SF_SPACING_TRAILING) len = sf_np_arange_len(T, 0, -((double)T / n));
  double *ts = malloc((size_t)len * sizeof *ts);
  double *sig = malloc((size_t)len * sizeof *sig);
  float *tsig = train_sigmas(s);
  float *logs = malloc((size_t)T * sizeof *logs);
  sf_status st = SF_OK;
  if (ts == NULL || sig == NULL || tsig == NULL || logs == NULL) {
    st = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    goto done;
  }
  st = check_train_sigmas(s, tsig, d);
  if (st != SF_OK) goto done;
  st = alloc_steps(s, len, 1, d);
  if (st != SF_OK) goto done;
  /* float32 timesteps as numpy builds them */
  if (c->timestep_spacing == SF_SPACING_LINSPACE) {
    sf_np_linspace(0, T - 1, n, 1, sig);
    for (int i = 0; i < n; i++) s->timesteps_f[i] = (float)sig[n - 1 - i];
  } else if (c->timestep_spacing == SF_SPACING_LEADING) {
    int ratio = T / n;
    for (int i = 0; i < n; i++)
      s->timesteps_f[i] = (float)((n - 1 - i) * ratio) + (float)c->steps_offset;
  } else {
    sf_np_arange(T, 0, -((double)T / n), sig, len);
    for (int i = 0; i < len; i++) s->timesteps_f[i] = (float)rint(sig[i]) - 1.0f;
  }
  for (int i = 0; i < len; i++) sig[i] = sf_np_interp_index((double)s->timesteps_f[i], tsig, T);
  if (c->kind == SF_SCHED_EULER && c->use_karras_sigmas) {
    double smin = isnan(c->sigma_min) ? sig[len - 1] : c->sigma_min;
    double smax = isnan(c->sigma_max) ? sig[0] : c->sigma_max;
    sf_sched_karras(smin, smax, len, sig);
    for (int t = 0; t < T; t++) logs[t] = logf(tsig[t]);
    for (int i = 0; i < len; i++) s->timesteps_f[i] = (float)sf_sched_sigma_to_t(sig[i], logs, T);
  }
  finish_sigmas(s, sig, len, tsig);
  if (c->kind == SF_SCHED_EULER && c->timestep_type_continuous && c->prediction_type == SF_PRED_V)
    for (int i = 0; i < len; i++) s->timesteps_f[i] = 0.25f * logf(s->sigmas[i]);
  {
    float mx = s->sigmas[0];
    for (int i = 1; i <= len; i++)
      if (s->sigmas[i] > mx) mx = s->sigmas[i];
    s->init_noise_sigma = c->timestep_spacing == SF_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
  }
  for (int i = 0; i < len; i++) s->timesteps_i[i] = timestep_i64(s->timesteps_f[i]);
done:
  free(ts);
  free(sig);
  free(tsig);
  free(logs);
  return st;
}

sf_status sf_sched_timesteps_dpm(sf_scheduler *s, int n, sf_diag *d) {
  const sf_sched_config *c = &s->cfg;
  int T = s->ntrain;
  float *tsig = train_sigmas(s);
  float *logs = malloc((size_t)T * sizeof *logs);
  double *a = malloc((size_t)(n + 2) * sizeof *a);
  sf_status st = SF_OK;
  if (tsig == NULL || logs == NULL || a == NULL) {
    st = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    goto done;
  }
  st = check_train_sigmas(s, tsig, d);
  if (st != SF_OK) goto done;
  /* clip lambda(t) = log(alpha_t) - log(sigma_t) from below */
  int clipped = 0;
  for (int t = 0; t < T; t++) {
    float acp = s->alphas_cumprod[t];
    float lambda = logf(sqrtf(acp)) - logf(sqrtf(1.0f - acp));
    if (lambda < c->lambda_min_clipped) clipped++;
  }
  int last = T - clipped;
  int len = n;
  if (c->timestep_spacing == SF_SPACING_TRAILING) {
    double ratio = (double)T / n;
    len = sf_np_arange_len(last, 0, -ratio);
    free(a);
    a = malloc((size_t)(len > 0 ? len : 1) * sizeof *a);
    if (a == NULL) {
      st = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
      goto done;
    }
    sf_np_arange(last, 0, -ratio, a, len);
  }
  st = alloc_steps(s, len, 1, d);
  if (st != SF_OK) goto done;
  if (c->timestep_spacing == SF_SPACING_LINSPACE) {
    sf_np_linspace(0, last - 1, n + 1, 1, a);
    for (int i = 0; i < n; i++) s->timesteps_i[i] = (int64_t)rint(a[n - i]);
  } else if (c->timestep_spacing == SF_SPACING_LEADING) {
    int ratio = last / (n + 1);
    for (int i = 0; i < n; i++) s->timesteps_i[i] = (int64_t)(n - i) * ratio + c->steps_offset;
  } else {
    for (int i = 0; i < len; i++) s->timesteps_i[i] = (int64_t)rint(a[i]) - 1;
  }
  double *sig = malloc((size_t)len * sizeof *sig);
  if (sig == NULL) {
    st = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
    goto done;
  }
  if (c->use_karras_sigmas) {
    for (int t = 0; t < T; t++) logs[t] = logf(tsig[t]);
    sf_sched_karras(tsig[0], tsig[T - 1], len, sig);
    for (int i = 0; i < len; i++) s->timesteps_i[i] = timestep_i64(rint(sf_sched_sigma_to_t(sig[i], logs, T)));
  } else {
    for (int i = 0; i < len; i++) sig[i] = sf_np_interp_index((double)s->timesteps_i[i], tsig, T);
  }
  finish_sigmas(s, sig, len, tsig);
  free(sig);
  for (int i = 0; i < len; i++) s->timesteps_f[i] = (float)s->timesteps_i[i];
  s->init_noise_sigma = 1.0f;
done:
  free(tsig);
  free(logs);
  free(a);
  return st;
}

sf_status sf_sched_timesteps_lcm(sf_scheduler *s, int n, sf_diag *d) {
  const sf_sched_config *c = &s->cfg;
  int T = s->ntrain;
  int orig = c->original_inference_steps;
  if (orig > T) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: original_inference_steps %d > %d", orig, T);
  if (n > orig)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: LCM supports at most %d steps (original_inference_steps)", orig);
  int k = T / orig;
  /* lcm_origin_timesteps = (1..orig)*k - 1, reversed; pick floor(linspace(0, orig, n, endpoint=False)) */
  if (orig / n < 1) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: too many LCM steps");
  double *a = malloc((size_t)n * sizeof *a);
  if (a == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory");
  sf_np_linspace(0, orig, n, 0, a);
  sf_status st = alloc_steps(s, n, 0, d);
  if (st == SF_OK) {
    for (int i = 0; i < n; i++) {
      int idx = (int)floor(a[i]);
      s->timesteps_i[i] = (int64_t)(orig - idx) * k - 1;
      s->timesteps_f[i] = (float)s->timesteps_i[i];
    }
  }
  free(a);
  return st;
}

sf_status sf_scheduler_set_timesteps(sf_scheduler *s, int num_inference_steps, size_t latent_count,
                                     sf_diag *d) {
  if (s == NULL || num_inference_steps < 1 || latent_count == 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "scheduler: invalid set_timesteps arguments");
  if (num_inference_steps > s->ntrain)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "scheduler: %d inference steps exceed num_train_timesteps %d",
                       num_inference_steps, s->ntrain);
  free_steps(s);
  s->num_inference_steps = num_inference_steps;
  s->init_noise_sigma = 1.0f;
  s->begin_index = 0;
  s->counter = 0;
  s->n_ets = 0;
  s->ets_head = 0;
  s->lower_order_nums = 0;
  s->latent_count = latent_count;
  sf_status st;
  int nhist = 0, cur = 0;
  switch (s->cfg.kind) {
  case SF_SCHED_DDIM:
    st = sf_sched_timesteps_ddim_like(s, num_inference_steps, d);
    if (st == SF_OK)
      for (int i = 0; i < s->nsteps; i++) s->timesteps_f[i] = (float)s->timesteps_i[i];
    break;
  case SF_SCHED_PNDM:
    st = sf_sched_timesteps_pndm(s, num_inference_steps, d);
    if (st == SF_OK)
      for (int i = 0; i < s->nsteps; i++) s->timesteps_f[i] = (float)s->timesteps_i[i];
    nhist = 4;
    cur = 1;
    break;
  case SF_SCHED_EULER:
  case SF_SCHED_EULER_A:
    st = sf_sched_timesteps_euler(s, num_inference_steps, d);
    break;
  case SF_SCHED_DPMPP_2M:
    st = sf_sched_timesteps_dpm(s, num_inference_steps, d);
    nhist = 2;
    break;
  case SF_SCHED_LCM:
    st = sf_sched_timesteps_lcm(s, num_inference_steps, d);
    break;
  default:
    st = sf_diag_set(d, SF_ERR_INTERNAL, "scheduler: bad kind");
  }
  /* Whatever the config, what a run will use must be sane: finite timesteps inside the
   * training range, finite non-negative sigmas, a finite positive initial sigma. */
  for (int i = 0; st == SF_OK && i < s->nsteps; i++)
    if (!isfinite(s->timesteps_f[i]) || s->timesteps_f[i] < -1.0f || s->timesteps_f[i] > (float)s->ntrain ||
        s->timesteps_i[i] < -1 || s->timesteps_i[i] > s->ntrain)
      st = sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: timestep %d is %g: outside the training schedule", i,
                       (double)s->timesteps_f[i]);
  for (int i = 0; st == SF_OK && s->sigmas && i <= s->nsteps; i++)
    if (!isfinite(s->sigmas[i]) || s->sigmas[i] < 0.0f)
      st = sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: sigma %d is %g", i, (double)s->sigmas[i]);
  if (st == SF_OK && !(isfinite(s->init_noise_sigma) && s->init_noise_sigma > 0.0f))
    st = sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: the initial noise sigma is %g",
                     (double)s->init_noise_sigma);
  if (st != SF_OK) {
    free_steps(s);
    return st;
  }
  /* DDIM, PLMS and LCM index alphas_cumprod by timestep (negative ones from the end, as torch
   * does): a large steps_offset puts leading timesteps past the table (diffusers fails there
   * with an IndexError). */
  if (s->cfg.kind == SF_SCHED_DDIM || s->cfg.kind == SF_SCHED_PNDM || s->cfg.kind == SF_SCHED_LCM)
    for (int i = 0; i < s->nsteps; i++)
      if (s->timesteps_i[i] >= s->ntrain || s->timesteps_i[i] < -(int64_t)s->ntrain) {
        int64_t t = s->timesteps_i[i];
        free_steps(s);
        return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                           "scheduler: %d steps with steps_offset %d give timestep %lld, outside the %d training "
                           "timesteps",
                           num_inference_steps, s->cfg.steps_offset, (long long)t, s->ntrain);
      }
  for (int i = 0; i < nhist; i++) {
    s->hist[i] = malloc(latent_count * sizeof(float));
    if (s->hist[i] == NULL) goto oom;
  }
  if (cur) {
    s->cur_sample = malloc(latent_count * sizeof(float));
    if (s->cur_sample == NULL) goto oom;
  }
  return SF_OK;
oom:
  free_steps(s);
  return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "scheduler: out of memory for %zu latents", latent_count);
}

int sf_scheduler_num_steps(const sf_scheduler *s) { return s->nsteps; }
float sf_scheduler_timestep(const sf_scheduler *s, int i) { return s->timesteps_f[i]; }
int64_t sf_scheduler_timestep_int(const sf_scheduler *s, int i) { return s->timesteps_i[i]; }
const float *sf_scheduler_sigmas(const sf_scheduler *s) { return s->sigmas; }
float sf_scheduler_init_noise_sigma(const sf_scheduler *s) { return s->init_noise_sigma; }
int sf_scheduler_order(const sf_scheduler *s) {
  (void)s;
  return 1;
}

void sf_scheduler_set_begin_index(sf_scheduler *s, int begin_index) { s->begin_index = begin_index; }

int sf_scheduler_img2img_begin(sf_scheduler *s, double strength) {
  int steps = s->num_inference_steps;
  double prod = (double)steps * strength;
  int init = (int)prod; /* python int() truncates */
  if (init > steps) init = steps;
  int t_start = steps - init;
  if (t_start < 0) t_start = 0;
  int begin = t_start * sf_scheduler_order(s);
  sf_scheduler_set_begin_index(s, begin);
  return begin;
}
