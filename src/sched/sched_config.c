#include <math.h>
#include <string.h>

#include "sched/scheduler.h"

void sf_sched_config_default(sf_sched_config *c, sf_sched_kind kind) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->num_train_timesteps = 1000;
  c->beta_start = 0.0001;
  c->beta_end = 0.02;
  c->beta_schedule = SF_BETA_LINEAR;
  c->steps_offset = 0;
  c->timestep_spacing = SF_SPACING_LEADING;
  c->prediction_type = SF_PRED_EPSILON;
  c->clip_sample_range = 1.0;
  c->skip_prk_steps = 0;
  c->sigma_min = NAN;
  c->sigma_max = NAN;
  c->solver_order = 2;
  c->lower_order_final = 1;
  c->lambda_min_clipped = -INFINITY;
  c->original_inference_steps = 50;
  c->timestep_scaling = 10.0;
  switch (kind) {
  case SF_SCHED_DDIM:
    c->clip_sample = 1;
    c->set_alpha_to_one = 1;
    break;
  case SF_SCHED_PNDM:
    c->set_alpha_to_one = 0;
    break;
  case SF_SCHED_EULER:
  case SF_SCHED_EULER_A:
  case SF_SCHED_DPMPP_2M:
    c->timestep_spacing = SF_SPACING_LINSPACE;
    break;
  case SF_SCHED_LCM:
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->beta_schedule = SF_BETA_SCALED_LINEAR;
    c->set_alpha_to_one = 1;
    break;
  }
}

sf_sched_kind sf_sched_kind_from_class_name(const char *name) {
  static const struct { const char *name; sf_sched_kind kind; } map[] = {
      {"DDIMScheduler", SF_SCHED_DDIM},
      {"PNDMScheduler", SF_SCHED_PNDM},
      {"EulerDiscreteScheduler", SF_SCHED_EULER},
      {"EulerAncestralDiscreteScheduler", SF_SCHED_EULER_A},
      {"DPMSolverMultistepScheduler", SF_SCHED_DPMPP_2M},
      {"LCMScheduler", SF_SCHED_LCM},
  };
  if (name == NULL) return (sf_sched_kind)0;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(name, map[i].name) == 0) return map[i].kind;
  return (sf_sched_kind)0;
}

/* Key presence per class: diffusers only applies keys its __init__ takes. */
enum {
  K_DDIM = 1 << SF_SCHED_DDIM,
  K_PNDM = 1 << SF_SCHED_PNDM,
  K_EULER = 1 << SF_SCHED_EULER,
  K_EULER_A = 1 << SF_SCHED_EULER_A,
  K_DPM = 1 << SF_SCHED_DPMPP_2M,
  K_LCM = 1 << SF_SCHED_LCM,
  K_ALL = K_DDIM | K_PNDM | K_EULER | K_EULER_A | K_DPM | K_LCM
};

static int has_key(const sf_sched_config *c, unsigned classes) {
  return (classes & (1u << c->kind)) != 0;
}

/* Returns the node when the class takes the key and the file has a non-null value. */
static const sf_json *take(const sf_sched_config *c, const sf_json *obj, const char *key,
                           unsigned classes) {
  if (!has_key(c, classes)) return NULL;
  const sf_json *v = sf_json_get(obj, key);
  if (v == NULL || sf_json_is_null(v)) return NULL;
  return v;
}

static sf_status get_int(const sf_sched_config *c, const sf_json *obj, const char *key,
                         unsigned classes, int lo, int hi, int *out, sf_diag *d) {
  const sf_json *v = take(c, obj, key, classes);
  if (v == NULL) return SF_OK;
  int64_t x;
  if (!sf_json_as_i64(v, &x) || x < lo || x > hi)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: %s must be an integer in [%d, %d]",
                       key, lo, hi);
  *out = (int)x;
  return SF_OK;
}

static sf_status get_double(const sf_sched_config *c, const sf_json *obj, const char *key,
                            unsigned classes, double *out, sf_diag *d) {
  const sf_json *v = take(c, obj, key, classes);
  if (v == NULL) return SF_OK;
  if (!sf_json_as_double(v, out) || !isfinite(*out))
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: %s must be a number", key);
  return SF_OK;
}

static sf_status get_bool(const sf_sched_config *c, const sf_json *obj, const char *key,
                          unsigned classes, int *out, sf_diag *d) {
  const sf_json *v = take(c, obj, key, classes);
  if (v == NULL) return SF_OK;
  int b = sf_json_as_bool(v);
  if (b < 0) return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: %s must be a boolean", key);
  *out = b;
  return SF_OK;
}

/* String enum: index into names, or error. Returns -1 when absent. */
static sf_status get_enum(const sf_sched_config *c, const sf_json *obj, const char *key,
                          unsigned classes, const char *const *names, int count, int *out,
                          sf_diag *d) {
  const sf_json *v = take(c, obj, key, classes);
  *out = -1;
  if (v == NULL) return SF_OK;
  const char *s = sf_json_as_string(v);
  if (s == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: %s must be a string", key);
  for (int i = 0; i < count; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = i;
      return SF_OK;
    }
  return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: %s \"%s\" is not supported", key, s);
}

#define TRY(expr)                     \
  do {                                \
    sf_status st_ = (expr);           \
    if (st_ != SF_OK) return st_;     \
  } while (0)

sf_status sf_sched_config_from_json(sf_sched_config *c, const sf_json *obj, sf_sched_kind kind,
                                    sf_diag *d) {
  if (obj == NULL || obj->type != SF_JSON_OBJECT)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: not a JSON object");
  int unknown = 0;
  if (kind == 0) {
    const char *cls = sf_json_as_string(sf_json_get(obj, "_class_name"));
    kind = sf_sched_kind_from_class_name(cls);
    if (kind == 0) {
      kind = SF_SCHED_DDIM;
      unknown = 1;
    }
  }
  sf_sched_config_default(c, kind);
  c->unknown_class = unknown;
  /* Our PNDM sampler is PLMS (A1111's and SD-1.5's): asked for explicitly on another
   * class's file, it skips the PRK warm-up that diffusers' from_config would default to.
   * A PNDMScheduler file that says skip_prk_steps false is still refused below. */
  if (kind == SF_SCHED_PNDM) c->skip_prk_steps = 1;

  TRY(get_int(c, obj, "num_train_timesteps", K_ALL, 2, 100000, &c->num_train_timesteps, d));
  TRY(get_double(c, obj, "beta_start", K_ALL, &c->beta_start, d));
  TRY(get_double(c, obj, "beta_end", K_ALL, &c->beta_end, d));
  int e;
  static const char *const schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
  TRY(get_enum(c, obj, "beta_schedule", K_ALL, schedules, 3, &e, d));
  if (e >= 0) c->beta_schedule = (sf_beta_schedule)e;
  if (take(c, obj, "trained_betas", K_ALL))
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: trained_betas is not supported");
  TRY(get_int(c, obj, "steps_offset", K_ALL, 0, 100000, &c->steps_offset, d));
  TRY(get_bool(c, obj, "set_alpha_to_one", K_DDIM | K_PNDM | K_LCM, &c->set_alpha_to_one, d));
  static const char *const spacings[] = {"leading", "trailing", "linspace"};
  TRY(get_enum(c, obj, "timestep_spacing", K_ALL, spacings, 3, &e, d));
  if (e >= 0) c->timestep_spacing = (sf_timestep_spacing)(SF_SPACING_LEADING + e);
  static const char *const preds[] = {"epsilon", "v_prediction", "sample"};
  TRY(get_enum(c, obj, "prediction_type", K_ALL, preds, 3, &e, d));
  if (e >= 0) c->prediction_type = (sf_pred_type)e;
  TRY(get_bool(c, obj, "clip_sample", K_DDIM | K_LCM, &c->clip_sample, d));
  TRY(get_double(c, obj, "clip_sample_range", K_DDIM | K_LCM, &c->clip_sample_range, d));
  int thresholding = 0;
  TRY(get_bool(c, obj, "thresholding", K_DDIM | K_DPM | K_LCM, &thresholding, d));
  if (thresholding)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: thresholding is not supported");
  TRY(get_bool(c, obj, "rescale_betas_zero_snr", K_DDIM | K_EULER | K_EULER_A | K_DPM | K_LCM,
               &c->rescale_betas_zero_snr, d));
  TRY(get_bool(c, obj, "skip_prk_steps", K_PNDM, &c->skip_prk_steps, d));
  TRY(get_bool(c, obj, "use_karras_sigmas", K_EULER | K_DPM, &c->use_karras_sigmas, d));
  static const char *const finals[] = {"zero", "sigma_min"};
  TRY(get_enum(c, obj, "final_sigmas_type", K_EULER | K_DPM, finals, 2, &e, d));
  if (e >= 0) c->final_sigma_min = e == 1;
  static const char *const interps[] = {"linear"};
  TRY(get_enum(c, obj, "interpolation_type", K_EULER, interps, 1, &e, d));
  static const char *const ttypes[] = {"discrete", "continuous"};
  TRY(get_enum(c, obj, "timestep_type", K_EULER, ttypes, 2, &e, d));
  if (e >= 0) c->timestep_type_continuous = e == 1;
  TRY(get_double(c, obj, "sigma_min", K_EULER, &c->sigma_min, d));
  TRY(get_double(c, obj, "sigma_max", K_EULER, &c->sigma_max, d));
  TRY(get_int(c, obj, "solver_order", K_DPM, 1, 3, &c->solver_order, d));
  static const char *const algos[] = {"dpmsolver++"};
  TRY(get_enum(c, obj, "algorithm_type", K_DPM, algos, 1, &e, d));
  static const char *const solvers[] = {"midpoint"};
  TRY(get_enum(c, obj, "solver_type", K_DPM, solvers, 1, &e, d));
  TRY(get_bool(c, obj, "lower_order_final", K_DPM, &c->lower_order_final, d));
  TRY(get_bool(c, obj, "euler_at_final", K_DPM, &c->euler_at_final, d));
  int lu = 0;
  TRY(get_bool(c, obj, "use_lu_lambdas", K_DPM, &lu, d));
  if (lu) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: use_lu_lambdas is not supported");
  if (take(c, obj, "variance_type", K_DPM))
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: variance_type is not supported");
  {
    /* diffusers writes -inf as the bare token -Infinity, which strict JSON cannot carry */
    const sf_json *v = take(c, obj, "lambda_min_clipped", K_DPM);
    if (v != NULL && !sf_json_as_double(v, &c->lambda_min_clipped))
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: lambda_min_clipped must be a number");
  }
  TRY(get_int(c, obj, "original_inference_steps", K_LCM, 1, 100000, &c->original_inference_steps, d));
  TRY(get_double(c, obj, "timestep_scaling", K_LCM, &c->timestep_scaling, d));

  if (c->kind == SF_SCHED_PNDM && !c->skip_prk_steps)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                       "scheduler config: PNDMScheduler needs skip_prk_steps true (PRK steps are "
                       "not implemented)");
  if (c->kind == SF_SCHED_DPMPP_2M && c->solver_order > 2)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "scheduler config: solver_order %d is not supported",
                       c->solver_order);
  if (c->kind == SF_SCHED_EULER_A && c->prediction_type == SF_PRED_SAMPLE)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                       "scheduler config: EulerAncestralDiscreteScheduler has no prediction_type sample");
  if (c->kind == SF_SCHED_PNDM && c->prediction_type == SF_PRED_SAMPLE)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                       "scheduler config: PNDMScheduler has no prediction_type sample");
  if (c->beta_start < 0 || c->beta_end < 0 || c->beta_end >= 1 || c->beta_start >= 1)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "scheduler config: betas outside [0, 1)");
  return SF_OK;
}
