/* Noise schedulers with the arithmetic of diffusers v0.30.3 (DDIMScheduler eta 0,
 * PNDMScheduler with skip_prk_steps, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler dpmsolver++/midpoint, LCMScheduler): float32 alphas_cumprod as
 * torch computes them, numpy-float64 timestep/sigma tables rounded where diffusers rounds,
 * and every per-element update in float32 in torch's operation order, so that a loop run
 * here matches the Python one to a few ulps. */
#ifndef SF_SCHED_SCHEDULER_H
#define SF_SCHED_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/json.h"

typedef enum sf_sched_kind {
  SF_SCHED_DDIM = 1,
  SF_SCHED_PNDM,
  SF_SCHED_EULER,
  SF_SCHED_EULER_A,
  SF_SCHED_DPMPP_2M,
  SF_SCHED_LCM
} sf_sched_kind;

typedef enum sf_beta_schedule {
  SF_BETA_LINEAR = 0,
  SF_BETA_SCALED_LINEAR,
  SF_BETA_SQUAREDCOS_CAP_V2
} sf_beta_schedule;

typedef enum sf_pred_type {
  SF_PRED_EPSILON = 0,
  SF_PRED_V,
  SF_PRED_SAMPLE
} sf_pred_type;

/* Every config key any supported class reads; a field a class does not have is ignored by
 * it (diffusers drops such keys with a warning). */
typedef struct sf_sched_config {
  sf_sched_kind kind;
  int unknown_class;          /* _class_name was not recognised; kind fell back to DDIM */
  int num_train_timesteps;
  double beta_start, beta_end;
  sf_beta_schedule beta_schedule;
  int steps_offset;
  int set_alpha_to_one;       /* DDIM, PNDM, LCM */
  sf_timestep_spacing timestep_spacing; /* public enum; never SF_SPACING_DEFAULT here */
  sf_pred_type prediction_type;
  int clip_sample;            /* DDIM, LCM */
  double clip_sample_range;
  int rescale_betas_zero_snr; /* DDIM, Euler, EulerA, DPM, LCM */
  int skip_prk_steps;         /* PNDM: only 1 is supported */
  int use_karras_sigmas;      /* Euler, DPM */
  int final_sigma_min;        /* Euler, DPM: final_sigmas_type "sigma_min" (else "zero") */
  int timestep_type_continuous; /* Euler: timestep_type "continuous" */
  double sigma_min, sigma_max;  /* Euler: NAN = not set */
  int solver_order;           /* DPM: 1 or 2 */
  int lower_order_final;      /* DPM */
  int euler_at_final;         /* DPM */
  double lambda_min_clipped;  /* DPM: -INFINITY by default */
  int original_inference_steps; /* LCM */
  double timestep_scaling;      /* LCM */
} sf_sched_config;

/* kind's defaults exactly as the diffusers class constructor has them. */
void sf_sched_config_default(sf_sched_config *c, sf_sched_kind kind);
/* Maps a diffusers _class_name to a kind; 0 if unknown. */
sf_sched_kind sf_sched_kind_from_class_name(const char *name);
/* Fills c from a scheduler_config.json object. kind 0 = take it from "_class_name" (unknown
 * or missing -> DDIM with c->unknown_class = 1, the caller logs it); a non-zero kind reads the
 * file like diffusers' `Kind.from_config(config)`: that class's defaults for the keys the file
 * lacks. Unsupported settings (thresholding, trained_betas, PRK steps, other DPM variants...)
 * are SF_ERR_UNSUPPORTED; wrong types / unknown enum strings SF_ERR_BAD_MODEL. */
sf_status sf_sched_config_from_json(sf_sched_config *c, const sf_json *obj, sf_sched_kind kind,
                                    sf_diag *d);

typedef struct sf_scheduler sf_scheduler;

/* Builds betas / alphas_cumprod. NULL on failure with d set. */
sf_scheduler *sf_scheduler_create(const sf_sched_config *c, sf_diag *d);
void sf_scheduler_destroy(sf_scheduler *s);
const sf_sched_config *sf_scheduler_config(const sf_scheduler *s);

/* The float32 training tables (num_train_timesteps entries). */
int sf_scheduler_num_train_timesteps(const sf_scheduler *s);
const float *sf_scheduler_betas(const sf_scheduler *s);
const float *sf_scheduler_alphas_cumprod(const sf_scheduler *s);
float sf_scheduler_final_alpha_cumprod(const sf_scheduler *s);

/* set_timesteps(num_inference_steps) and allocation of the multistep history for latents
 * of latent_count floats (one sample; the same buffers serve every later step). Resets all
 * step state. Can be called again. */
sf_status sf_scheduler_set_timesteps(sf_scheduler *s, int num_inference_steps,
                                     size_t latent_count, sf_diag *d);

/* len(scheduler.timesteps): num_inference_steps, +1 for PNDM with skip_prk_steps (its timesteps
 * are the reversed concat(t[:-1], t[-2:-1], t[-1:]): the 2nd and 3rd entries are equal, e.g.
 * 876, 751, 751, 626, ... for 8 steps). */
int sf_scheduler_num_steps(const sf_scheduler *s);
/* timesteps[i] as the UNet receives it (integral for DDIM/PNDM/DPM/LCM, fractional float32
 * for Euler/EulerA). */
float sf_scheduler_timestep(const sf_scheduler *s, int i);
/* Integer schedules (DDIM/PNDM/DPM/LCM) as int64; Euler's float timesteps truncated. */
int64_t sf_scheduler_timestep_int(const sf_scheduler *s, int i);
/* Euler/EulerA/DPM: sigmas[0..num_steps] (with the final one); NULL for the others. */
const float *sf_scheduler_sigmas(const sf_scheduler *s);
float sf_scheduler_init_noise_sigma(const sf_scheduler *s);
/* The scheduler's class attribute `order` (1 for every supported kind). */
int sf_scheduler_order(const sf_scheduler *s);

/* scale_model_input(x, timesteps[i]); out may alias x. */
void sf_scheduler_scale_model_input(const sf_scheduler *s, int i, const float *x, float *out,
                                    size_t n);
/* 1 if diffusers' step() at index i draws a [latent shape] torch.randn from the pipeline's
 * generator (EulerA: every step; Euler: every step, unused while s_churn = 0; LCM: every
 * step but the last). The caller draws it in that order and passes it as `noise`, so that
 * the generator stream stays in sync with diffusers. */
int sf_scheduler_step_draws_noise(const sf_scheduler *s, int i);
/* One step at schedule index i (steps must run in order i = begin, begin+1, ... after
 * set_timesteps or set_begin_index): sample[0..n) is replaced by prev_sample.
 * noise: that step's draw when sf_scheduler_step_draws_noise says so (required for EulerA
 * and LCM, ignored otherwise). n must equal the latent_count of set_timesteps. */
sf_status sf_scheduler_step(sf_scheduler *s, int i, const float *model_output, float *sample,
                            size_t n, const float *noise, sf_diag *d);

/* LCM only: the consistency model's denoised sample at index i (what a step stopping there
 * returns), computed as sf_scheduler_step does; sample is read, not changed. */
sf_status sf_scheduler_lcm_denoised(const sf_scheduler *s, int i, const float *model_output, const float *sample,
                                    float *denoised, size_t n, sf_diag *d);
/* LCM only: c_skip and c_out of timesteps[i] (get_scalings_for_boundary_condition_discrete);
 * 0 for another scheduler or an index outside the schedule. */
int sf_scheduler_lcm_scalings(const sf_scheduler *s, int i, float *c_skip, float *c_out);

/* img2img, as StableDiffusionImg2ImgPipeline.get_timesteps: the loop starts at index
 * t_start*order (returned), with init_timestep = min(int(steps*strength), steps),
 * t_start = max(steps - init_timestep, 0); also performs set_begin_index. */
int sf_scheduler_img2img_begin(sf_scheduler *s, double strength);
void sf_scheduler_set_begin_index(sf_scheduler *s, int begin_index);
/* add_noise(original, noise, timesteps[index]) for one sample (out may alias original): DDPM
 * form sqrt(acp)*x + sqrt(1-acp)*noise for DDIM/PNDM/LCM, x + noise*sigmas[index] for
 * Euler/EulerA, alpha_t*x + sigma_t*noise from sigmas[index] for DPM. The img2img pipeline
 * passes its begin index (diffusers looks the sigma up there after set_begin_index). */
void sf_scheduler_add_noise(const sf_scheduler *s, int index, const float *original,
                            const float *noise, float *out, size_t n);

#endif
