/* The schedules through the public API only: sampler names, argument and state checks,
 * SD-1.5's DDIM/PLMS timesteps worked out by hand, toy loops of every sampler, and (with the
 * fixtures) two fake-model loops of the fixture set. */
#include <snapfusion.h>
#include <stdint.h>

#include "test.h"

static int message_has(const char *word) { return strstr(sf_last_error(), word) != NULL; }

static sf_schedule *make(sf_sampler sampler, const char *config, int steps, size_t n) {
  sf_schedule *s = NULL;
  sf_status st = sf_schedule_create(sampler, config, NULL, &s);
  CHECK_MSG(st == SF_OK, "create %d: %s", (int)sampler, sf_last_error());
  if (st == SF_OK && steps > 0) CHECK_MSG(sf_schedule_set_steps(s, steps, n) == SF_OK, "%s", sf_last_error());
  return s;
}

static void test_names(void) {
  for (int i = SF_SAMPLER_DDIM; i <= SF_SAMPLER_LCM; i++) {
    const char *name = sf_sampler_name((sf_sampler)i);
    CHECK_MSG(name != NULL && sf_sampler_from_name(name) == (sf_sampler)i, "sampler %d", i);
  }
  CHECK(strcmp(sf_sampler_name(SF_SAMPLER_DPMPP_2M), "dpm++2m") == 0);
  CHECK(strcmp(sf_sampler_name(SF_SAMPLER_EULER_A), "euler_a") == 0);
  CHECK(sf_sampler_name(SF_SAMPLER_DEFAULT) == NULL);
  CHECK(sf_sampler_name((sf_sampler)99) == NULL);
  CHECK(sf_sampler_from_name(NULL) == SF_SAMPLER_DEFAULT);
  CHECK(sf_sampler_from_name("") == SF_SAMPLER_DEFAULT);
  CHECK(sf_sampler_from_name("unipc") == SF_SAMPLER_DEFAULT);
  CHECK(sf_sampler_from_name("euler_ancestral") == SF_SAMPLER_EULER_A);
  CHECK(sf_sampler_from_name("dpmpp_2m") == SF_SAMPLER_DPMPP_2M);
  CHECK(sf_sampler_from_name("plms") == SF_SAMPLER_PNDM);
  CHECK(sf_sampler_from_name("DDIM") == SF_SAMPLER_DDIM);
}

static void test_create_errors(void) {
  sf_schedule *s = (sf_schedule *)1;
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DDIM, NULL, NULL, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("out_schedule"));
  CHECK_EQ_INT(sf_schedule_create((sf_sampler)42, NULL, NULL, &s), SF_ERR_INVALID_ARGUMENT);
  CHECK(s == NULL && message_has("sf_sampler"));
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DDIM, "{\"steps_offset\": ", NULL, &s), SF_ERR_BAD_MODEL);
  CHECK(s == NULL && sf_last_error()[0] != '\0');
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DEFAULT, "{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true}",
                                  NULL, &s),
               SF_ERR_UNSUPPORTED);
  CHECK(message_has("thresholding"));
  /* diffusers writes -Infinity into DPM configs */
  s = make(SF_SAMPLER_DPMPP_2M, "{\"lambda_min_clipped\": -Infinity, \"beta_schedule\": \"scaled_linear\"}", 4, 8);
  sf_schedule_destroy(s);

  sf_params *ov = NULL;
  CHECK(sf_params_create(&ov) == SF_OK);
  sf_params_set_int(ov, SF_PARAM_PREDICTION_TYPE, 9);
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DDIM, NULL, ov, &s), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("PREDICTION_TYPE"));
  sf_params_unset(ov, SF_PARAM_PREDICTION_TYPE);
  sf_params_set_int(ov, SF_PARAM_TIMESTEP_SPACING, -1);
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DDIM, NULL, ov, &s), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("TIMESTEP_SPACING"));
  sf_params_unset(ov, SF_PARAM_TIMESTEP_SPACING);
  sf_params_set_int(ov, SF_PARAM_KARRAS_SIGMAS, 1);
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DDIM, NULL, ov, &s), SF_ERR_UNSUPPORTED);
  CHECK(message_has("Karras"));
  /* Karras through the override changes DPM's sigmas (first = sigma_max either way) */
  sf_schedule *plain = make(SF_SAMPLER_DPMPP_2M, NULL, 8, 4);
  CHECK(sf_schedule_create(SF_SAMPLER_DPMPP_2M, NULL, ov, &s) == SF_OK);
  CHECK(sf_schedule_set_steps(s, 8, 4) == SF_OK);
  float a[9], b[9];
  size_t na = 0, nb = 0;
  CHECK(sf_schedule_sigmas(plain, a, 9, &na) == SF_OK && sf_schedule_sigmas(s, b, 9, &nb) == SF_OK);
  CHECK(na == 9 && nb == 9 && a[4] != b[4] && a[8] == 0.0f && b[8] == 0.0f);
  sf_schedule_destroy(s);
  sf_schedule_destroy(plain);
  sf_params_destroy(ov);
  sf_schedule_destroy(NULL);
}

static void test_state_errors(void) {
  sf_schedule *s = make(SF_SAMPLER_DDIM, NULL, 0, 0);
  if (s == NULL) return;
  float x[8] = {0}, y[8] = {0};
  size_t count = 99;
  CHECK_EQ_INT(sf_schedule_set_steps(NULL, 8, 8), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_set_steps(s, 0, 8), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("steps"));
  CHECK_EQ_INT(sf_schedule_set_steps(s, 8, 0), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_set_steps(s, 1001, 8), SF_ERR_INVALID_ARGUMENT);
  /* nothing prepared yet */
  CHECK_EQ_INT(sf_schedule_evaluations(s), 0);
  CHECK(isnan(sf_schedule_timestep(s, 0)));
  CHECK(isnan(sf_schedule_init_noise_sigma(s)));
  CHECK_EQ_INT(sf_schedule_step(s, 0, x, y, 8, NULL), SF_ERR_BAD_STATE);
  CHECK(message_has("sf_schedule_set_steps"));
  CHECK_EQ_INT(sf_schedule_scale_input(s, 0, x, y, 8), SF_ERR_BAD_STATE);
  CHECK_EQ_INT(sf_schedule_sigmas(s, NULL, 0, &count), SF_ERR_BAD_STATE);
  CHECK(sf_schedule_set_steps(s, 8, 8) == SF_OK);
  /* out of range, wrong sizes, NULLs */
  CHECK(isnan(sf_schedule_timestep(s, 8)) && message_has("outside"));
  CHECK(isnan(sf_schedule_timestep(s, -1)));
  CHECK(isnan(sf_schedule_timestep(NULL, 0)));
  CHECK_EQ_INT(sf_schedule_evaluations(NULL), 0);
  CHECK_EQ_INT(sf_schedule_step(s, 8, x, y, 8, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_step(s, 0, x, y, 7, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("7 values"));
  CHECK_EQ_INT(sf_schedule_step(s, 0, NULL, y, 8, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_step(NULL, 0, x, y, 8, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_scale_input(s, 0, x, NULL, 8), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_scale_input(s, 0, x, y, 9), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_schedule_sigmas(s, NULL, 0, NULL), SF_ERR_INVALID_ARGUMENT);
  /* DDIM has no sigmas */
  CHECK(sf_schedule_sigmas(s, NULL, 0, &count) == SF_OK && count == 0);
  CHECK_EQ_INT(sf_schedule_step_needs_noise(s, 0), 0);
  /* steps run in order */
  CHECK(sf_schedule_step(s, 2, x, y, 8, NULL) == SF_OK);
  CHECK_EQ_INT(sf_schedule_step(s, 2, x, y, 8, NULL), SF_ERR_BAD_STATE);
  CHECK(message_has("in order"));
  CHECK_EQ_INT(sf_schedule_step(s, 4, x, y, 8, NULL), SF_ERR_BAD_STATE);
  CHECK(sf_schedule_step(s, 3, x, y, 8, NULL) == SF_OK);
  CHECK(sf_schedule_set_steps(s, 8, 8) == SF_OK);
  CHECK(sf_schedule_step(s, 0, x, y, 8, NULL) == SF_OK);
  sf_schedule_destroy(s);

  /* the ancestral sampler needs its draw; the sigmas query reports the size it needs */
  s = make(SF_SAMPLER_EULER_A, NULL, 4, 8);
  if (s == NULL) return;
  CHECK_EQ_INT(sf_schedule_step_needs_noise(s, 0), 1);
  CHECK_EQ_INT(sf_schedule_step(s, 0, x, y, 8, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK(message_has("noise"));
  float sig[5];
  CHECK_EQ_INT(sf_schedule_sigmas(s, sig, 2, &count), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(count, 5);
  count = 0;
  CHECK(sf_schedule_sigmas(s, NULL, 0, &count) == SF_OK && count == 5); /* size query */
  CHECK_EQ_INT(sf_schedule_sigmas(s, NULL, 5, &count), SF_ERR_INVALID_ARGUMENT);
  sf_schedule_destroy(s);
}

/* SD-1.5's config (NULL), DDIMScheduler, 8 steps, "leading" spacing: step_ratio = 1000 // 8
 * = 125; timesteps = (arange(8) * 125).round()[::-1] + steps_offset 1
 * = 876, 751, 626, 501, 376, 251, 126, 1. PNDM (skip_prk_steps) with the same _timesteps
 * (ascending 1..876) runs concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]: 9 evaluations,
 * 876, 751, 751, 626, ..., 1. */
static void test_sd15_timesteps(void) {
  static const double ddim[8] = {876, 751, 626, 501, 376, 251, 126, 1};
  static const double plms[9] = {876, 751, 751, 626, 501, 376, 251, 126, 1};
  sf_schedule *s = make(SF_SAMPLER_DDIM, NULL, 8, 16);
  if (s != NULL) {
    CHECK_EQ_INT(sf_schedule_evaluations(s), 8);
    for (int i = 0; i < 8; i++) CHECK_MSG(sf_schedule_timestep(s, i) == ddim[i], "ddim t[%d] = %g", i, sf_schedule_timestep(s, i));
    CHECK(sf_schedule_init_noise_sigma(s) == 1.0);
  }
  sf_schedule_destroy(s);
  s = make(SF_SAMPLER_DEFAULT, NULL, 8, 16); /* SD-1.5 ships PNDMScheduler */
  if (s != NULL) {
    CHECK_EQ_INT(sf_schedule_evaluations(s), 9);
    for (int i = 0; i < 9; i++) CHECK_MSG(sf_schedule_timestep(s, i) == plms[i], "plms t[%d] = %g", i, sf_schedule_timestep(s, i));
  }
  sf_schedule_destroy(s);
  /* the spacing override: "trailing" gives round(arange(1000, 0, -125)) - 1 = 999, 874, ..., 124 */
  sf_params *ov = NULL;
  sf_params_create(&ov);
  sf_params_set_int(ov, SF_PARAM_TIMESTEP_SPACING, SF_SPACING_TRAILING);
  s = NULL;
  CHECK(sf_schedule_create(SF_SAMPLER_DDIM, NULL, ov, &s) == SF_OK && sf_schedule_set_steps(s, 8, 16) == SF_OK);
  if (s != NULL) {
    CHECK(sf_schedule_timestep(s, 0) == 999.0);
    CHECK(sf_schedule_timestep(s, 7) == 124.0);
  }
  sf_schedule_destroy(s);
  sf_params_destroy(ov);
}

static void test_euler(void) {
  sf_schedule *s = make(SF_SAMPLER_EULER, NULL, 8, 16);
  if (s == NULL) return;
  /* from_config of SD-1.5's file: "linspace", so init_noise_sigma = sigma_max ~ 14.6 */
  double sigma0 = sf_schedule_init_noise_sigma(s);
  CHECK_MSG(sigma0 > 1.0 && sigma0 < 20.0, "euler init_noise_sigma %g", sigma0);
  float sig[9];
  size_t n = 0;
  CHECK(sf_schedule_sigmas(s, sig, 9, &n) == SF_OK && n == 9);
  CHECK(fabs((double)sig[0] - sigma0) < 1e-5 * sigma0 && sig[8] == 0.0f);
  /* linspace(0, 999, 8)[::-1]: 999 first, fractional values between */
  CHECK(sf_schedule_timestep(s, 0) == 999.0 && sf_schedule_timestep(s, 7) == 0.0);
  CHECK(sf_schedule_timestep(s, 1) != floor(sf_schedule_timestep(s, 1)));
  CHECK_EQ_INT(sf_schedule_step_needs_noise(s, 0), 0);
  float x[16], y[16];
  for (int i = 0; i < 16; i++) x[i] = 2.0f;
  CHECK(sf_schedule_scale_input(s, 0, x, y, 16) == SF_OK);
  CHECK(fabs((double)y[0] - 2.0 / sqrt((double)sig[0] * sig[0] + 1.0)) < 1e-6);
  CHECK(sf_schedule_scale_input(s, 0, x, x, 16) == SF_OK && x[3] == y[3]); /* in place */
  sf_schedule_destroy(s);
}

/* A toy model through whole loops of every sampler: the latents stay finite and move. */
static void test_toy_loops(void) {
  enum { N = 64 };
  sf_rng *rng = NULL;
  CHECK(sf_rng_create(SF_RNG_TORCH_CPU, 7, &rng) == SF_OK);
  if (rng == NULL) return;
  for (int smp = SF_SAMPLER_DDIM; smp <= SF_SAMPLER_LCM; smp++) {
    sf_schedule *s = make((sf_sampler)smp, NULL, smp == SF_SAMPLER_LCM ? 4 : 10, N);
    if (s == NULL) continue;
    float x[N], x0[N], xin[N], mo[N], nz[N];
    sf_rng_randn(rng, x, N);
    double sigma0 = sf_schedule_init_noise_sigma(s);
    for (int k = 0; k < N; k++) x[k] *= (float)sigma0;
    memcpy(x0, x, sizeof x);
    int evals = sf_schedule_evaluations(s), finite = 1;
    for (int i = 0; i < evals; i++) {
      double t = sf_schedule_timestep(s, i);
      CHECK(sf_schedule_scale_input(s, i, x, xin, N) == SF_OK);
      for (int k = 0; k < N; k++) mo[k] = 0.9f * xin[k] + (float)(t / 1000.0) * 0.1f;
      const float *noise = NULL;
      if (sf_schedule_step_needs_noise(s, i)) {
        sf_rng_randn(rng, nz, N);
        noise = nz;
      }
      sf_status st = sf_schedule_step(s, i, mo, x, N, noise);
      CHECK_MSG(st == SF_OK, "%s step %d: %s", sf_sampler_name((sf_sampler)smp), i, sf_last_error());
    }
    double moved = 0;
    for (int k = 0; k < N; k++) {
      finite &= isfinite(x[k]) != 0;
      moved += fabs((double)x[k] - x0[k]);
    }
    CHECK_MSG(finite && moved > 0, "%s: loop result not finite or unchanged", sf_sampler_name((sf_sampler)smp));
    sf_schedule_destroy(s);
  }
  sf_rng_destroy(rng);
}

/* ---- fixtures: a minimal safetensors / manifest reader (public API tests do not link the
 * library's internals) ---- */

static char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = '\0';
    *size = (size_t)n;
  }
  return buf;
}

/* malloc'd copy of an F32 tensor of a safetensors file image; NULL if absent. */
static float *st_f32(const char *file, size_t size, const char *name, size_t *count) {
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)file[i];
  if (size < 8 || hlen > size - 8) return NULL;
  char *header = malloc(hlen + 1);
  memcpy(header, file + 8, hlen);
  header[hlen] = '\0';
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", name);
  const char *p = strstr(header, pat);
  const char *end = p ? strchr(p, '}') : NULL;
  const char *off = p ? strstr(p, "\"data_offsets\":[") : NULL;
  float *out = NULL;
  unsigned long long a = 0, b = 0;
  if (p && end && off && off < end && strstr(p, "\"dtype\":\"F32\"") < end &&
      sscanf(off + 16, "%llu,%llu", &a, &b) == 2 && b >= a && 8 + hlen + b <= size && (b - a) % 4 == 0) {
    out = malloc(b - a + 4);
    memcpy(out, file + 8 + hlen + a, b - a);
    *count = (size_t)(b - a) / 4;
  }
  free(header);
  return out;
}

/* atol/rtol of output `output` in the manifest entry of case `name`. */
static int manifest_tolerance(const char *manifest, const char *name, const char *output, double *atol, double *rtol) {
  char pat[200];
  snprintf(pat, sizeof pat, "\"name\": \"%s\"", name);
  const char *c = strstr(manifest, pat);
  const char *next = c ? strstr(c + 1, "\"name\": \"") : NULL;
  const char *tol = c ? strstr(c, "\"tolerance\":") : NULL;
  snprintf(pat, sizeof pat, "\"%s\": {", output);
  const char *o = tol ? strstr(tol, pat) : NULL;
  const char *pa = o ? strstr(o, "\"atol\":") : NULL, *pr = o ? strstr(o, "\"rtol\":") : NULL;
  if (!pa || !pr || (next && pr > next)) return 0;
  *atol = strtod(pa + 7, NULL);
  *rtol = strtod(pr + 7, NULL);
  return 1;
}

/* Values outside atol + rtol |ref|; *max_abs takes the max error over the finite pairs and
 * *nonfinite counts the pairs with a NaN or Inf (also counted as bad). */
static size_t count_bad(const float *got, const float *ref, size_t n, double atol, double rtol, double *max_abs,
                        size_t *nonfinite) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - (double)ref[i]);
    if (!(e <= atol + rtol * fabs((double)ref[i]))) bad++;
    if (!isfinite(got[i]) || !isfinite(ref[i])) ++*nonfinite;
    else if (e > *max_abs) *max_abs = e;
  }
  return bad;
}

/* The case's fake model (params.fake_model): x = noise * init_noise_sigma; model_output =
 * 0.1 * scale_input(x) + c(t) * phi, c(t) = float(0.05 * t / 1000). The config is tiny-sd's
 * scheduler_config.json (SD-1.5's DDIM keys): for these cases its from_config reading is the
 * case's effective config. */
static void fixture_loop(const char *fx, const char *manifest, const char *case_name, const char *file_name,
                         sf_sampler sampler) {
  char path[4400];
  size_t size = 0, csize = 0;
  snprintf(path, sizeof path, "%s/public/tiny-sd/scheduler/scheduler_config.json", fx);
  char *config = read_file(path, &csize);
  snprintf(path, sizeof path, "%s/public/cases/%s", fx, file_name);
  char *file = read_file(path, &size);
  CHECK_MSG(config && file, "%s: case files missing", case_name);
  size_t n = 0, nphi = 0, nlat = 0, nfin = 0, nsn = 0;
  float *noise = file ? st_f32(file, size, "in.noise", &n) : NULL;
  float *phi = file ? st_f32(file, size, "in.phi", &nphi) : NULL;
  float *lat = file ? st_f32(file, size, "out.latents", &nlat) : NULL;
  float *fin = file ? st_f32(file, size, "out.final", &nfin) : NULL;
  float *step_noise = file ? st_f32(file, size, "in.step_noise", &nsn) : NULL;
  double atol = 0, rtol = 0, fatol = 0, frtol = 0;
  int have_tol = manifest_tolerance(manifest, case_name, "latents", &atol, &rtol) &&
                 manifest_tolerance(manifest, case_name, "final", &fatol, &frtol);
  CHECK_MSG(noise && phi && lat && fin && nphi == n && nfin == n && have_tol, "%s: inputs", case_name);
  sf_schedule *s = NULL;
  if (noise && phi && lat && fin && nphi == n && nfin == n && have_tol &&
      sf_schedule_create(sampler, config, NULL, &s) == SF_OK && sf_schedule_set_steps(s, 8, n) == SF_OK) {
    int evals = sf_schedule_evaluations(s);
    CHECK_EQ_INT((size_t)evals * n, nlat);
    float *x = malloc(n * sizeof *x), *xin = malloc(n * sizeof *xin), *mo = malloc(n * sizeof *mo);
    float sigma0 = (float)sf_schedule_init_noise_sigma(s);
    for (size_t k = 0; k < n; k++) x[k] = noise[k] * sigma0;
    size_t bad = 0, nonfinite = 0;
    double max_abs = 0;
    for (int i = 0; i < evals && (size_t)evals * n == nlat; i++) {
      float ct = (float)(0.05 * sf_schedule_timestep(s, i) / 1000.0);
      sf_schedule_scale_input(s, i, x, xin, n);
      for (size_t k = 0; k < n; k++) mo[k] = 0.1f * xin[k] + ct * phi[k];
      const float *nz = NULL;
      if (sf_schedule_step_needs_noise(s, i)) {
        CHECK(step_noise != NULL && nsn >= (size_t)(i + 1) * n);
        if (step_noise == NULL || nsn < (size_t)(i + 1) * n) break;
        nz = step_noise + (size_t)i * n;
      }
      CHECK_MSG(sf_schedule_step(s, i, mo, x, n, nz) == SF_OK, "%s", sf_last_error());
      bad += count_bad(x, lat + (size_t)i * n, n, atol, rtol, &max_abs, &nonfinite);
    }
    CHECK_MSG(nonfinite == 0, "%s: %zu non-finite latents", case_name, nonfinite);
    CHECK_MSG(bad == 0, "%s: %zu latents out of tolerance (max %g)", case_name, bad, max_abs);
    double fmax = 0;
    size_t fin_nonfinite = 0;
    CHECK_MSG(count_bad(x, fin, n, fatol, frtol, &fmax, &fin_nonfinite) == 0 && fin_nonfinite == 0,
              "%s: final off by %g (%zu non-finite)", case_name, fmax, fin_nonfinite);
    printf("%s through sf_schedule: %d evaluations, max |d| %.3g (atol %g)\n", case_name, evals,
           max_abs > fmax ? max_abs : fmax, atol);
    free(x);
    free(xin);
    free(mo);
  } else if (s == NULL && have_tol) {
    CHECK_MSG(0, "%s: %s", case_name, sf_last_error());
  }
  sf_schedule_destroy(s);
  free(noise);
  free(phi);
  free(lat);
  free(fin);
  free(step_noise);
  free(file);
  free(config);
}

/* Configs whose derived tables are not finite are refused at set_steps with a message, never
 * turned into NaN (or undefined int64) timesteps: beta_start 0 gives a zero training sigma,
 * whose log Karras sigmas take; non-finite config values likewise. */
static void test_nonfinite_schedules(void) {
  static const char zero_start[] =
      "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_start\": 0.0, \"beta_end\": 0.012, "
      "\"beta_schedule\": \"scaled_linear\"}";
  static const char nan_sigma[] =
      "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, "
      "\"beta_schedule\": \"scaled_linear\", \"use_karras_sigmas\": true, \"sigma_min\": NaN}";
  const sf_sampler samplers[] = {SF_SAMPLER_EULER, SF_SAMPLER_DPMPP_2M};
  for (size_t i = 0; i < 2; i++) {
    sf_params *o = NULL;
    sf_params_create(&o);
    sf_params_set_int(o, SF_PARAM_KARRAS_SIGMAS, 1);
    sf_schedule *s = NULL;
    CHECK_EQ_INT(sf_schedule_create(samplers[i], zero_start, o, &s), SF_OK);
    sf_status st = sf_schedule_set_steps(s, 8, 16);
    CHECK_MSG(st == SF_ERR_BAD_MODEL, "sampler %d, beta_start 0 + Karras: %s", (int)samplers[i], sf_status_string(st));
    CHECK_MSG(strstr(sf_last_error(), "Karras") != NULL || strstr(sf_last_error(), "sigma") != NULL, "message: %s",
              sf_last_error());
    CHECK(isnan(sf_schedule_timestep(s, 0)));
    sf_schedule_destroy(s);
    /* without Karras sigmas the same config is usable: sigma 0 at t = 0 is finite */
    sf_params_set_int(o, SF_PARAM_KARRAS_SIGMAS, 0);
    CHECK_EQ_INT(sf_schedule_create(samplers[i], zero_start, o, &s), SF_OK);
    CHECK_EQ_INT(sf_schedule_set_steps(s, 8, 16), SF_OK);
    for (int k = 0; k < sf_schedule_evaluations(s); k++) CHECK(isfinite(sf_schedule_timestep(s, k)));
    sf_schedule_destroy(s);
    sf_params_destroy(o);
  }
  sf_schedule *s = NULL;
  sf_status st = sf_schedule_create(SF_SAMPLER_DEFAULT, nan_sigma, NULL, &s);
  if (st == SF_OK) {
    st = sf_schedule_set_steps(s, 8, 16);
    CHECK_MSG(st != SF_OK, "a NaN sigma_min was accepted");
    sf_schedule_destroy(s);
  } else {
    CHECK_MSG(st == SF_ERR_BAD_MODEL || st == SF_ERR_INVALID_ARGUMENT, "%s", sf_status_string(st));
  }
}

/* Found by fuzz_scheduler. Trailing spacing with 61 of 1000 steps gives 62 timesteps ending at
 * -1 (numpy's arange with a float step, as diffusers computes them), and DDIM read
 * alphas_cumprod[-1], before the table. diffusers' torch index counts from the end: the step
 * at t = -1 and add_noise there use alphas_cumprod[999]. A steps_offset that puts timesteps past
 * the table (an IndexError in diffusers) is refused. */
static void test_timesteps_outside_the_table(void) {
  sf_params *ov = NULL;
  CHECK(sf_params_create(&ov) == SF_OK);
  sf_params_set_int(ov, SF_PARAM_TIMESTEP_SPACING, SF_SPACING_TRAILING);
  sf_schedule *s = NULL;
  CHECK(sf_schedule_create(SF_SAMPLER_DDIM, NULL, ov, &s) == SF_OK);
  sf_params_destroy(ov);
  if (s == NULL) return;
  CHECK(sf_schedule_set_steps(s, 61, 4) == SF_OK);
  CHECK_EQ_INT(sf_schedule_evaluations(s), 62);
  CHECK(sf_schedule_timestep(s, 60) == 15.0 && sf_schedule_timestep(s, 61) == -1.0);
  float acp[1000];
  size_t n = 0;
  CHECK(sf_schedule_get_table(s, SF_TABLE_ALPHAS_CUMPROD, acp, 1000, &n) == SF_OK && n == 1000);
  const float a_t = acp[999], a_prev = (float)sf_schedule_final_alpha_cumprod(s);
  CHECK(a_prev == acp[0]); /* set_alpha_to_one false */
  const float x0[4] = {1.0f, -0.5f, 0.25f, 2.0f}, mo[4] = {0.1f, 0.2f, -0.3f, 0.05f};
  float x[4];
  memcpy(x, x0, sizeof x);
  CHECK(sf_schedule_step(s, 61, mo, x, 4, NULL) == SF_OK); /* the first step may be any i */
  for (int k = 0; k < 4; k++) {
    float pred = (x0[k] - sqrtf(1.0f - a_t) * mo[k]) / sqrtf(a_t);
    float want = sqrtf(a_prev) * pred + sqrtf(1.0f - a_prev) * mo[k];
    CHECK_MSG(fabsf(x[k] - want) <= 1e-5f * fabsf(want) + 1e-6f, "step at t=-1: x[%d] = %.9g, want %.9g", k, x[k],
              want);
  }
  float noisy[4];
  CHECK(sf_schedule_add_noise(s, 61, x0, mo, noisy, 4) == SF_OK);
  for (int k = 0; k < 4; k++) {
    float want = sqrtf(a_t) * x0[k] + sqrtf(1.0f - a_t) * mo[k];
    CHECK_MSG(fabsf(noisy[k] - want) <= 1e-5f * fabsf(want) + 1e-6f, "add_noise at t=-1: [%d] = %.9g, want %.9g", k,
              noisy[k], want);
  }
  sf_schedule_destroy(s);

  /* Leading spacing with a steps_offset beyond the table: the config is refused (the check of
   * every derived table sees it first and names the timestep). */
  const sf_sampler samplers[2] = {SF_SAMPLER_DDIM, SF_SAMPLER_PNDM}; /* LCM has no offset */
  for (int i = 0; i < 2; i++) {
    s = NULL;
    CHECK(sf_schedule_create(samplers[i], "{\"steps_offset\": 5000, \"timestep_spacing\": \"leading\"}", NULL, &s) ==
          SF_OK);
    if (s == NULL) continue;
    CHECK_EQ_INT(sf_schedule_set_steps(s, 4, 4), SF_ERR_BAD_MODEL);
    CHECK_MSG(message_has("5750") && message_has("outside"), "%s", sf_last_error());
    CHECK(sf_schedule_evaluations(s) == 0);
    CHECK(sf_schedule_step(s, 0, mo, x, 4, NULL) == SF_ERR_BAD_STATE);
    sf_schedule_destroy(s);
  }
}

int main(void) {
  test_names();
  test_nonfinite_schedules();
  test_timesteps_outside_the_table();
  test_create_errors();
  test_state_errors();
  test_sd15_timesteps();
  test_euler();
  test_toy_loops();
  const char *fx = sf_test_fixtures();
  if (fx != NULL) {
    char path[4400];
    size_t size = 0;
    snprintf(path, sizeof path, "%s/public/manifest.json", fx);
    char *manifest = read_file(path, &size);
    CHECK(manifest != NULL);
    if (manifest) {
      fixture_loop(fx, manifest, "scheduler/ddim_eps/8steps", "scheduler__ddim_eps__8steps.safetensors",
                   SF_SAMPLER_DEFAULT);
      fixture_loop(fx, manifest, "scheduler/euler_ancestral/8steps",
                   "scheduler__euler_ancestral__8steps.safetensors", SF_SAMPLER_EULER_A);
    }
    free(manifest);
  }
  TEST_MAIN_END();
}
