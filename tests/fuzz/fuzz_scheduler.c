/* Scheduler configs through the public API (sf_schedule_*). Input: byte 0 picks the sampler
 * (mod 7: default, DDIM, PNDM, Euler, Euler ancestral, DPM++ 2M, LCM), byte 1 the step count
 * (1 + b mod 64), byte 2 the overrides (bits 0-1 prediction type, 2-3 timestep spacing, 4-5
 * Karras sigmas unset/off/on/unset, 6 an explicit eta 0, 7 img2img strength 0.3 instead of 0.7);
 * the rest is the scheduler_config.json text (none: NULL, SD-1.5's defaults).
 *
 * Then set_steps for 16 latent values, every timestep, the sigmas, init_noise_sigma, a whole
 * denoising loop (scale_input, step with a fixed fake model and noise when asked), an img2img
 * start (begin_index, add_noise, the remaining steps) and the tables.
 *
 * Invariants: failures have a known status and a message; a prepared schedule has at least one
 * evaluation, finite timesteps >= -1, as many sigmas as evaluations + 1,
 * and every call on valid arguments succeeds. */
#include <math.h>

#include "fuzz_common.h"

#define COUNT 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  sf_sampler sampler = (sf_sampler)(data[0] % 7);
  int steps = 1 + data[1] % 64;
  unsigned flags = data[2];
  char *config = NULL; /* three bytes alone: no config (SD-1.5's defaults) */
  if (size > 3) {
    if ((config = malloc(size - 3 + 1)) == NULL) fz_die("out of memory");
    memcpy(config, data + 3, size - 3);
    config[size - 3] = 0;
  }

  sf_params *over = NULL;
  if (sf_params_create(&over) != SF_OK) fz_die("params");
  if (flags & 3) sf_params_set_int(over, SF_PARAM_PREDICTION_TYPE, flags & 3);
  if ((flags >> 2) & 3) sf_params_set_int(over, SF_PARAM_TIMESTEP_SPACING, (flags >> 2) & 3);
  if (((flags >> 4) & 3) == 1 || ((flags >> 4) & 3) == 2) sf_params_set_int(over, SF_PARAM_KARRAS_SIGMAS, ((flags >> 4) & 3) - 1);
  if (flags & 64) sf_params_set_float(over, SF_PARAM_ETA, 0.0);
  double strength = flags & 128 ? 0.3 : 0.7;

  sf_schedule *sch = NULL;
  sf_status s = sf_schedule_create(sampler, config, over, &sch);
  free(config);
  sf_params_destroy(over);
  if (s != SF_OK) {
    FZ_ASSERT(sch == NULL, "a failed create returned a schedule");
    fz_check_failure(s, "sf_schedule_create");
    return 0;
  }
  size_t ntrain = 0;
  FZ_ASSERT(sf_schedule_get_table(sch, SF_TABLE_BETAS, NULL, 0, &ntrain) == SF_OK && ntrain >= 2, "table size %zu",
            ntrain);
  float *table = malloc(ntrain * sizeof *table);
  if (table == NULL) fz_die("out of memory");
  FZ_ASSERT(sf_schedule_get_table(sch, SF_TABLE_BETAS, table, ntrain, &ntrain) == SF_OK, "betas");
  FZ_ASSERT(sf_schedule_get_table(sch, SF_TABLE_ALPHAS_CUMPROD, table, ntrain, &ntrain) == SF_OK, "alphas_cumprod");
  free(table);
  (void)sf_schedule_final_alpha_cumprod(sch);

  s = sf_schedule_set_steps(sch, steps, COUNT);
  if (s != SF_OK) {
    fz_check_failure(s, "sf_schedule_set_steps");
    sf_schedule_destroy(sch);
    return 0;
  }
  int n = sf_schedule_evaluations(sch);
  FZ_ASSERT(n >= 1 && n <= steps + 1, "%d evaluations for %d steps", n, steps);
  for (int i = 0; i < n; i++) {
    double t = sf_schedule_timestep(sch, i);
    /* -1: trailing spacing's extra step (numpy's arange, as in diffusers); no upper bound:
     * the sigma samplers take leading timesteps past the table with a large steps_offset, as
     * diffusers does (their sigmas are interpolated, clamped at the ends). */
    FZ_ASSERT(isfinite(t) && t >= -1, "timestep %d is %g (num_train_timesteps %zu)", i, t, ntrain);
  }
  size_t nsig = 0;
  FZ_ASSERT(sf_schedule_sigmas(sch, NULL, 0, &nsig) == SF_OK, "sigmas size query");
  if (nsig) {
    FZ_ASSERT(nsig == (size_t)n + 1, "%zu sigmas for %d evaluations", nsig, n);
    float *sig = malloc(nsig * sizeof *sig);
    if (sig == NULL) fz_die("out of memory");
    FZ_ASSERT(sf_schedule_sigmas(sch, sig, nsig, &nsig) == SF_OK, "sigmas");
    free(sig);
  }
  double init = sf_schedule_init_noise_sigma(sch);
  (void)init;

  float *x = fz_floats(COUNT, 2.0f), *phi = fz_floats(COUNT, 1.0f), *noise = fz_floats(COUNT, 2.0f);
  float in[COUNT], out[COUNT];
  for (int pass = 0; pass < 2; pass++) {
    int begin = 0;
    if (pass == 1) {
      FZ_ASSERT(sf_schedule_set_steps(sch, steps, COUNT) == SF_OK, "set_steps again");
      begin = sf_schedule_begin_index(sch, strength);
      if (begin < 0) break; /* the strength leaves no step: refused with a message */
      FZ_ASSERT(begin < n, "begin index %d of %d", begin, n);
      FZ_ASSERT(sf_schedule_add_noise(sch, begin, x, noise, x, COUNT) == SF_OK, "add_noise");
    }
    for (int i = begin; i < n; i++) {
      FZ_ASSERT(sf_schedule_scale_input(sch, i, x, in, COUNT) == SF_OK, "scale_input %d", i);
      float c = (float)(0.05 * sf_schedule_timestep(sch, i) / 1000.0);
      for (int k = 0; k < COUNT; k++) out[k] = 0.1f * in[k] + c * phi[k];
      const float *nz = sf_schedule_step_needs_noise(sch, i) ? noise : NULL;
      s = sf_schedule_step(sch, i, out, x, COUNT, nz);
      FZ_ASSERT(s == SF_OK, "step %d of %d: %s", i, n, sf_status_string(s));
    }
  }
  free(x);
  free(phi);
  free(noise);
  sf_schedule_destroy(sch);
  return 0;
}
