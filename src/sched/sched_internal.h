/* Shared state and numeric helpers of the scheduler implementation (not for other modules). */
#ifndef SF_SCHED_INTERNAL_H
#define SF_SCHED_INTERNAL_H

#include "sched/scheduler.h"

struct sf_scheduler {
  sf_sched_config cfg;
  int ntrain;
  float *betas;           /* [ntrain] */
  float *alphas_cumprod;  /* [ntrain] */
  float final_alpha_cumprod;

  int num_inference_steps; /* as requested */
  int nsteps;              /* len(timesteps) */
  int64_t *timesteps_i;    /* [nsteps] */
  float *timesteps_f;      /* [nsteps] */
  float *sigmas;           /* [nsteps+1] (Euler, EulerA, DPM) */
  float init_noise_sigma;
  int begin_index;

  size_t latent_count;
  float *hist[4];          /* PNDM: ets ring; DPM: previous model outputs */
  float *cur_sample;       /* PNDM */
  int counter;             /* PNDM */
  int n_ets;               /* PNDM */
  int ets_head;            /* PNDM: slot of the newest ets */
  int lower_order_nums;    /* DPM */
};

/* numpy semantics in float64 */
void sf_np_linspace(double start, double stop, int num, int endpoint, double *out);
/* np.arange(start, stop, step) for doubles; returns the length (at most cap written). */
int sf_np_arange(double start, double stop, double step, double *out, int cap);
int sf_np_arange_len(double start, double stop, double step);
/* np.interp(x, arange(n), fp) with fp float32 */
double sf_np_interp_index(double x, const float *fp, int n);

/* Per-kind set_timesteps parts (timesteps, sigmas, init_noise_sigma). */
sf_status sf_sched_timesteps_ddim_like(sf_scheduler *s, int n, sf_diag *d);
sf_status sf_sched_timesteps_pndm(sf_scheduler *s, int n, sf_diag *d);
sf_status sf_sched_timesteps_euler(sf_scheduler *s, int n, sf_diag *d);
sf_status sf_sched_timesteps_dpm(sf_scheduler *s, int n, sf_diag *d);
sf_status sf_sched_timesteps_lcm(sf_scheduler *s, int n, sf_diag *d);

void sf_sched_step_ddim(sf_scheduler *s, int i, const float *mo, float *x, size_t n);
void sf_sched_step_pndm(sf_scheduler *s, int i, const float *mo, float *x, size_t n);
void sf_sched_step_euler(sf_scheduler *s, int i, const float *mo, float *x, size_t n);
void sf_sched_step_euler_a(sf_scheduler *s, int i, const float *mo, float *x, size_t n,
                           const float *noise);
void sf_sched_step_dpm(sf_scheduler *s, int i, const float *mo, float *x, size_t n);
void sf_sched_step_lcm(sf_scheduler *s, int i, const float *mo, float *x, size_t n,
                       const float *noise);

/* karras sigmas (float64) from sigma_min/max, as _convert_to_karras */
void sf_sched_karras(double sigma_min, double sigma_max, int n, double *out);
/* _sigma_to_t with log_sigmas = float32 log of the training sigmas */
double sf_sched_sigma_to_t(double sigma, const float *log_sigmas, int ntrain);

#endif
