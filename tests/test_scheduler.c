/* Schedulers vs the scheduler cases (training tables, timestep tables, fake-model loops),
 * the pipelines' recorded scheduler inputs/outputs, config parsing and LCM invariants. */
#include <stdint.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "sched/scheduler.h"
#include "test.h"

static char set_dir[4200];
static sf_diag diag;

static sf_json_doc *open_manifest(const char *fx) {
  char path[4400];
  snprintf(set_dir, sizeof set_dir, "%s/public", fx);
  snprintf(path, sizeof path, "%s/manifest.json", set_dir);
  sf_diag_clear(&diag);
  /* the manifest carries diffusers' -Infinity (lambda_min_clipped) */
  sf_json_doc *doc = sf_json_parse_file_ex(path, NULL, 64u << 20, SF_JSON_ALLOW_NONFINITE, &diag);
  if (doc == NULL) fprintf(stderr, "manifest: %s\n", diag.msg);
  return doc;
}

static sf_safetensors *open_case(const sf_json *c) {
  char path[4400];
  sf_diag_clear(&diag);
  snprintf(path, sizeof path, "%s/%s", set_dir, sf_json_as_string(sf_json_get(c, "file")));
  sf_safetensors *st = sf_st_open(path, &diag);
  if (st == NULL) fprintf(stderr, "%s\n", diag.msg);
  return st;
}

/* malloc'd float copy of a tensor, or NULL (reported) */
static float *get_f32(const sf_safetensors *st, const char *key, size_t *n) {
  const sf_st_tensor *t = sf_st_find(st, key);
  CHECK_MSG(t != NULL, "missing tensor %s", key);
  if (t == NULL) return NULL;
  float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
  sf_st_to_f32(t, v);
  if (n) *n = (size_t)t->numel;
  return v;
}

static int tolerance(const sf_json *c, const char *name, double *atol, double *rtol) {
  const sf_json *t = sf_json_get(sf_json_get(c, "tolerance"), name);
  int ok = sf_json_as_double(sf_json_get(t, "atol"), atol) && sf_json_as_double(sf_json_get(t, "rtol"), rtol);
  CHECK_MSG(ok, "no tolerance for %s", name);
  return ok;
}

typedef struct cmp_stat {
  double max_abs, worst_ratio; /* over the pairs where both values are finite */
  size_t n_bad, n_bitdiff;
  size_t n_nonfinite; /* pairs with a NaN or Inf on either side: every check fails on them */
} cmp_stat;

static void cmp_accum(cmp_stat *s, const float *got, const float *ref, size_t n, double atol, double rtol) {
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - (double)ref[i]);
    double allow = atol + rtol * fabs((double)ref[i]);
    if (!(e <= allow)) s->n_bad++;
    if (memcmp(&got[i], &ref[i], sizeof(float)) != 0) s->n_bitdiff++;
    if (!isfinite(got[i]) || !isfinite(ref[i])) {
      s->n_nonfinite++;
      continue;
    }
    if (e > s->max_abs) s->max_abs = e;
    double r = allow > 0 ? e / allow : (e > 0 ? INFINITY : 0);
    if (r > s->worst_ratio) s->worst_ratio = r;
  }
}

static void cmp_report(const char *what, const cmp_stat *s, size_t n) {
  printf("  %-34s max|d|=%-10.3g worst d/allow=%-8.3g bit-diffs=%zu/%zu\n", what, s->max_abs,
         s->worst_ratio, s->n_bitdiff, n);
  CHECK_MSG(s->n_nonfinite == 0, "%s: %zu non-finite values", what, s->n_nonfinite);
  CHECK_MSG(s->n_bad == 0, "%s: %zu values out of tolerance (max %g)", what, s->n_bad, s->max_abs);
}

static sf_scheduler *make_sched(const sf_json *config, sf_sched_kind kind, sf_sched_config *cfg) {
  sf_diag_clear(&diag);
  sf_status st = sf_sched_config_from_json(cfg, config, kind, &diag);
  CHECK_MSG(st == SF_OK, "config: %s", diag.msg);
  if (st != SF_OK) return NULL;
  sf_scheduler *s = sf_scheduler_create(cfg, &diag);
  CHECK_MSG(s != NULL, "create: %s", diag.msg);
  return s;
}

static void test_alphas_cumprod(const sf_json *c) {
  printf("scheduler/alphas_cumprod\n");
  sf_sched_config cfg;
  sf_scheduler *s = make_sched(sf_json_get(sf_json_get(c, "params"), "config"), SF_SCHED_DDIM, &cfg);
  sf_safetensors *st = open_case(c);
  if (s == NULL || st == NULL) goto done;
  const char *names[3] = {"betas", "alphas_cumprod", "final_alpha_cumprod"};
  float fin = sf_scheduler_final_alpha_cumprod(s);
  const float *got[3] = {sf_scheduler_betas(s), sf_scheduler_alphas_cumprod(s), &fin};
  for (int k = 0; k < 3; k++) {
    char key[64];
    snprintf(key, sizeof key, "out.%s", names[k]);
    size_t n = 0;
    float *ref = get_f32(st, key, &n);
    double atol, rtol;
    if (ref && tolerance(c, names[k], &atol, &rtol)) {
      CHECK(n == (k < 2 ? (size_t)sf_scheduler_num_train_timesteps(s) : 1));
      cmp_stat cs = {0};
      cmp_accum(&cs, got[k], ref, n, atol, rtol);
      cmp_report(names[k], &cs, n);
    }
    free(ref);
  }
done:
  sf_st_close(st);
  sf_scheduler_destroy(s);
}

/* Compares the scheduler's timesteps (int64 exactly, float within atol) and sigmas. */
static void check_tables(const sf_scheduler *s, const sf_safetensors *st, const char *prefix,
                         double ts_atol, double ts_rtol, double sg_atol, double sg_rtol, const char *label) {
  char key[256];
  snprintf(key, sizeof key, "%s.timesteps", prefix);
  const sf_st_tensor *t = sf_st_find(st, key);
  CHECK_MSG(t != NULL, "missing %s", key);
  if (t == NULL) return;
  int n = sf_scheduler_num_steps(s);
  CHECK_MSG((int64_t)t->numel == n, "%s: %d timesteps, reference has %lld", label, n, (long long)t->numel);
  if ((int64_t)t->numel != n) return;
  if (t->dtype == SF_DTYPE_I64) {
    int64_t *ref = malloc((size_t)n * sizeof *ref);
    sf_st_to_i64(t, ref);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += sf_scheduler_timestep_int(s, i) != ref[i];
    CHECK_MSG(bad == 0, "%s: %d int64 timesteps differ", label, bad);
    free(ref);
  } else {
    float *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    sf_st_to_f32(t, ref);
    for (int i = 0; i < n; i++) got[i] = sf_scheduler_timestep(s, i);
    cmp_stat cs = {0};
    cmp_accum(&cs, got, ref, (size_t)n, ts_atol, ts_rtol);
    CHECK_MSG(cs.n_nonfinite == 0, "%s: %zu non-finite float timesteps", label, cs.n_nonfinite);
    CHECK_MSG(cs.n_bad == 0, "%s: float timesteps off by %g", label, cs.max_abs);
    free(ref);
    free(got);
  }
  snprintf(key, sizeof key, "%s.sigmas", prefix);
  t = sf_st_find(st, key);
  if (t != NULL) {
    CHECK_MSG(sf_scheduler_sigmas(s) != NULL && (int64_t)t->numel == n + 1, "%s: sigmas", label);
    if (sf_scheduler_sigmas(s) != NULL && (int64_t)t->numel == n + 1) {
      float *ref = malloc((size_t)(n + 1) * sizeof *ref);
      sf_st_to_f32(t, ref);
      cmp_stat cs = {0};
      cmp_accum(&cs, sf_scheduler_sigmas(s), ref, (size_t)n + 1, sg_atol, sg_rtol);
      CHECK_MSG(cs.n_nonfinite == 0, "%s: %zu non-finite sigmas", label, cs.n_nonfinite);
      CHECK_MSG(cs.n_bad == 0, "%s: sigmas off by %g (bit-diffs %zu)", label, cs.max_abs, cs.n_bitdiff);
      free(ref);
    }
  }
}

static void test_loop_case(const sf_json *c) {
  const char *name = sf_json_as_string(sf_json_get(c, "name"));
  const sf_json *params = sf_json_get(c, "params");
  sf_sched_kind kind = sf_sched_kind_from_class_name(sf_json_as_string(sf_json_get(params, "class")));
  CHECK_MSG(kind != 0, "%s: unknown class", name);
  if (kind == 0) return;
  int64_t steps = 0;
  CHECK(sf_json_as_i64(sf_json_get(params, "num_inference_steps"), &steps));
  printf("%s\n", name);
  sf_sched_config cfg;
  sf_scheduler *s = make_sched(sf_json_get(params, "config"), kind, &cfg);
  sf_safetensors *st = open_case(c);
  size_t n = 0, nphi = 0, nlat = 0, nfin = 0, nstepnoise = 0;
  float *noise = NULL, *phi = NULL, *lat = NULL, *fin = NULL, *step_noise = NULL, *x = NULL, *xin = NULL,
        *mo = NULL;
  if (s == NULL || st == NULL) goto done;
  noise = get_f32(st, "in.noise", &n);
  phi = get_f32(st, "in.phi", &nphi);
  lat = get_f32(st, "out.latents", &nlat);
  fin = get_f32(st, "out.final", &nfin);
  if (kind == SF_SCHED_EULER_A) step_noise = get_f32(st, "in.step_noise", &nstepnoise);
  if (!noise || !phi || !lat || !fin || nphi != n || nfin != n || (kind == SF_SCHED_EULER_A && !step_noise))
    goto done;
  sf_diag_clear(&diag);
  CHECK_MSG(sf_scheduler_set_timesteps(s, (int)steps, n, &diag) == SF_OK, "%s", diag.msg);
  int ns = sf_scheduler_num_steps(s);
  CHECK_MSG(nlat == (size_t)ns * n, "%s: %d steps vs %zu latents", name, ns, nlat / n);
  if (nlat != (size_t)ns * n) goto done;

  double ts_atol, ts_rtol, sg_atol = 0, sg_rtol = 0;
  tolerance(c, "timesteps", &ts_atol, &ts_rtol);
  if (sf_json_get(sf_json_get(c, "tolerance"), "sigmas")) tolerance(c, "sigmas", &sg_atol, &sg_rtol);
  check_tables(s, st, "out", ts_atol, ts_rtol, sg_atol, sg_rtol, name);
  {
    double atol, rtol;
    float *ref = get_f32(st, "out.init_noise_sigma", NULL);
    float got = sf_scheduler_init_noise_sigma(s);
    if (ref && tolerance(c, "init_noise_sigma", &atol, &rtol)) {
      cmp_stat cs = {0};
      cmp_accum(&cs, &got, ref, 1, atol, rtol);
      cmp_report("init_noise_sigma", &cs, 1);
    }
    free(ref);
  }
  /* the case's fake model loop */
  x = malloc(n * sizeof *x);
  xin = malloc(n * sizeof *xin);
  mo = malloc(n * sizeof *mo);
  float sigma0 = sf_scheduler_init_noise_sigma(s);
  for (size_t k = 0; k < n; k++) x[k] = noise[k] * sigma0;
  double atol, rtol, fatol, frtol;
  tolerance(c, "latents", &atol, &rtol);
  tolerance(c, "final", &fatol, &frtol);
  cmp_stat cl = {0};
  if (kind == SF_SCHED_EULER_A) CHECK(nstepnoise == (size_t)ns * n);
  for (int i = 0; i < ns; i++) {
    float t = sf_scheduler_timestep(s, i);
    float ct = (float)(0.05 * (double)t / 1000.0);
    sf_scheduler_scale_model_input(s, i, x, xin, n);
    for (size_t k = 0; k < n; k++) mo[k] = 0.1f * xin[k] + ct * phi[k];
    sf_diag_clear(&diag);
    sf_status stt = sf_scheduler_step(s, i, mo, x, n, step_noise ? step_noise + (size_t)i * n : NULL, &diag);
    CHECK_MSG(stt == SF_OK, "%s step %d: %s", name, i, diag.msg);
    cmp_stat one = {0};
    cmp_accum(&one, x, lat + (size_t)i * n, n, atol, rtol);
    CHECK_MSG(one.n_nonfinite == 0, "%s: step %d: %zu non-finite latents", name, i, one.n_nonfinite);
    CHECK_MSG(one.n_bad == 0, "%s: step %d latents off by %g", name, i, one.max_abs);
    cmp_accum(&cl, x, lat + (size_t)i * n, n, atol, rtol);
  }
  cmp_report("latents (all steps)", &cl, nlat);
  cmp_stat cf = {0};
  cmp_accum(&cf, x, fin, n, fatol, frtol);
  cmp_report("final", &cf, n);
done:
  free(noise);
  free(phi);
  free(lat);
  free(fin);
  free(step_noise);
  free(x);
  free(xin);
  free(mo);
  sf_st_close(st);
  sf_scheduler_destroy(s);
}

static sf_sched_kind kind_of_table(const char *k) {
  if (strncmp(k, "ddim", 4) == 0) return SF_SCHED_DDIM;
  if (strncmp(k, "euler_ancestral", 15) == 0) return SF_SCHED_EULER_A;
  if (strncmp(k, "euler", 5) == 0) return SF_SCHED_EULER;
  if (strncmp(k, "dpmpp_2m", 8) == 0) return SF_SCHED_DPMPP_2M;
  if (strncmp(k, "pndm", 4) == 0) return SF_SCHED_PNDM;
  return (sf_sched_kind)0;
}

static void test_timestep_tables(const sf_json *c) {
  printf("scheduler/timestep_tables\n");
  sf_safetensors *st = open_case(c);
  CHECK(st != NULL);
  if (st == NULL) return;
  const sf_json *kinds = sf_json_get(sf_json_get(c, "params"), "kinds");
  const sf_json *outs = sf_json_get(c, "outputs");
  int tables = 0;
  for (size_t o = 0; o < outs->len; o++) {
    /* key "<kind>.<spacing>.<steps>.timesteps" */
    char key[256], kname[64], spacing[32];
    int steps = 0;
    snprintf(key, sizeof key, "%s", outs->u.obj.keys[o]);
    size_t len = strlen(key);
    if (len < 10 || strcmp(key + len - 10, ".timesteps") != 0) continue;
    key[len - 10] = 0;
    char *p1 = strchr(key, '.'), *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    CHECK_MSG(p1 && p2, "bad key %s", key);
    if (!p1 || !p2) continue;
    snprintf(kname, sizeof kname, "%.*s", (int)(p1 - key), key);
    snprintf(spacing, sizeof spacing, "%.*s", (int)(p2 - p1 - 1), p1 + 1);
    steps = atoi(p2 + 1);
    sf_sched_kind kind = kind_of_table(kname);
    CHECK_MSG(kind != 0, "unknown kind %s", kname);
    if (kind == 0) continue;
    sf_sched_config cfg;
    sf_diag_clear(&diag);
    CHECK(sf_sched_config_from_json(&cfg, sf_json_get(kinds, kname), kind, &diag) == SF_OK);
    cfg.timestep_spacing = strcmp(spacing, "leading") == 0    ? SF_SPACING_LEADING
                           : strcmp(spacing, "trailing") == 0 ? SF_SPACING_TRAILING
                                                              : SF_SPACING_LINSPACE;
    sf_scheduler *s = sf_scheduler_create(&cfg, &diag);
    CHECK(s != NULL);
    if (s == NULL) continue;
    sf_diag_clear(&diag);
    CHECK_MSG(sf_scheduler_set_timesteps(s, steps, 16, &diag) == SF_OK, "%s: %s", key, diag.msg);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "out.%s", key);
    /* the case's rule: "int64 timesteps exact; float timesteps/sigmas atol 1e-3 (timesteps) /
     * rtol 1e-5 (sigmas)" (its numeric fields are 0, the allowances are in the rule text) */
    check_tables(s, st, prefix, 1e-3, 0, 0, 1e-5, key);
    sf_scheduler_destroy(s);
    tables++;
  }
  printf("  %d tables checked\n", tables);
  CHECK(tables > 50);
  sf_st_close(st);
}

/* The pipelines' own scheduler traffic: guided_noise_pred in, latents_per_step out. */
static void test_pipeline_case(const sf_json *c) {
  const char *name = sf_json_as_string(sf_json_get(c, "name"));
  const sf_json *params = sf_json_get(c, "params");
  const sf_json *conf = sf_json_get(params, "scheduler_config");
  if (conf == NULL) return;
  sf_sched_config cfg;
  sf_scheduler *s = make_sched(conf, 0, &cfg);
  sf_safetensors *st = open_case(c);
  float *g = NULL, *lat = NULL, *x = NULL, *draws = NULL;
  size_t ng = 0, nlat = 0, n = 0, ndraws = 0;
  if (s == NULL || st == NULL) goto done;
  CHECK(!cfg.unknown_class);
  printf("%s (%s)\n", name, sf_json_as_string(sf_json_get(params, "scheduler_class")));
  g = get_f32(st, "mid.guided_noise_pred", &ng);
  lat = get_f32(st, "mid.latents_per_step", &nlat);
  if (sf_st_find(st, "mid.latents_initial") != NULL) {
    x = get_f32(st, "mid.latents_initial", &n);
  } else {
    /* latents= runs: the loop starts from in.latents * init_noise_sigma */
    double sigma = 1.0;
    CHECK(sf_json_as_double(sf_json_get(params, "init_noise_sigma"), &sigma));
    x = get_f32(st, "in.latents", &n);
    for (size_t k = 0; x && k < n; k++) x[k] = x[k] * (float)sigma;
  }
  if (!g || !lat || !x) goto done;
  int64_t steps = 0;
  CHECK(sf_json_as_i64(sf_json_get(params, "num_inference_steps"), &steps));
  CHECK(sf_scheduler_set_timesteps(s, (int)steps, n, &diag) == SF_OK);
  int begin = 0;
  double strength = 1.0;
  if (sf_json_as_double(sf_json_get(params, "strength"), &strength)) {
    begin = sf_scheduler_img2img_begin(s, strength);
    int64_t t_start = -1;
    CHECK(sf_json_as_i64(sf_json_get(params, "t_start"), &t_start) && t_start == begin);
    /* add_noise at the first loop timestep with the second generator draw */
    size_t ni = 0, nn = 0;
    float *init = get_f32(st, "mid.init_latents", &ni);
    float *noisy = get_f32(st, "mid.noisy_latents", &nn);
    draws = get_f32(st, "mid.generator_draws", &ndraws);
    if (init && noisy && draws && ni == n && nn == n && ndraws == 2 * n) {
      float *out = malloc(n * sizeof *out);
      sf_scheduler_add_noise(s, begin, init, draws + n, out, n);
      double atol, rtol;
      if (tolerance(c, "noisy_latents", &atol, &rtol)) {
        cmp_stat cs = {0};
        cmp_accum(&cs, out, noisy, n, atol, rtol);
        cmp_report("add_noise -> noisy_latents", &cs, n);
      }
      free(out);
    }
    free(init);
    free(noisy);
  }
  {
    const sf_st_tensor *t = sf_st_find(st, "mid.timesteps");
    int nloop = sf_scheduler_num_steps(s) - begin;
    CHECK(t != NULL && (int)t->numel == nloop);
    if (t == NULL || (int)t->numel != nloop || ng != (size_t)nloop * n || nlat != ng) goto done;
    float *ts = malloc((size_t)nloop * sizeof *ts);
    sf_st_to_f32(t, ts);
    int bad = 0;
    for (int i = 0; i < nloop; i++) bad += ts[i] != sf_scheduler_timestep(s, begin + i);
    CHECK_MSG(bad == 0, "%s: loop timesteps differ", name);
    free(ts);
  }
  if (cfg.kind == SF_SCHED_EULER_A && draws == NULL)
    draws = get_f32(st, "mid.generator_draws", &ndraws);
  double atol, rtol;
  tolerance(c, "latents_per_step", &atol, &rtol);
  cmp_stat cs = {0};
  int nloop = sf_scheduler_num_steps(s) - begin;
  int is_ancestral = cfg.kind == SF_SCHED_EULER_A;
  if (is_ancestral) CHECK(draws != NULL && ndraws == (size_t)(nloop + 1) * n);
  for (int i = 0; i < nloop; i++) {
    /* EulerA: draw 0 made the initial latents, draw i+1 belongs to step i */
    const float *nz = is_ancestral && draws ? draws + (size_t)(i + 1) * n : NULL;
    sf_diag_clear(&diag);
    CHECK_MSG(sf_scheduler_step(s, begin + i, g + (size_t)i * n, x, n, nz, &diag) == SF_OK, "%s", diag.msg);
    cmp_accum(&cs, x, lat + (size_t)i * n, n, atol, rtol);
  }
  cmp_report("latents_per_step", &cs, nlat);
done:
  free(g);
  free(lat);
  free(x);
  free(draws);
  sf_st_close(st);
  sf_scheduler_destroy(s);
}

static sf_json_doc *parse_text(const char *text) {
  sf_diag_clear(&diag);
  return sf_json_parse_ex(text, strlen(text), SF_JSON_ALLOW_NONFINITE, &diag);
}

static void test_config_parsing(const sf_json *manifest_root) {
  /* SD-1.5's DDIM file read as Euler keeps Euler's own defaults for the absent keys,
   * which is the effective config the euler case lists */
  char path[4400];
  snprintf(path, sizeof path, "%s/tiny-sd/scheduler/scheduler_config.json", set_dir);
  sf_diag_clear(&diag);
  sf_json_doc *file = sf_json_parse_file_ex(path, NULL, 1 << 20, SF_JSON_ALLOW_NONFINITE, &diag);
  CHECK_MSG(file != NULL, "%s", diag.msg);
  if (file == NULL) return;
  sf_sched_config a, b;
  CHECK(sf_sched_config_from_json(&a, sf_json_root(file), 0, &diag) == SF_OK);
  CHECK(a.kind == SF_SCHED_DDIM && !a.unknown_class);
  CHECK(a.timestep_spacing == SF_SPACING_LEADING && a.steps_offset == 1 && !a.set_alpha_to_one &&
        !a.clip_sample && a.beta_schedule == SF_BETA_SCALED_LINEAR);
  const sf_json *cases = sf_json_get(manifest_root, "cases");
  for (size_t i = 0; i < cases->len; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    const sf_json *params = sf_json_get(c, "params");
    const char *cls = sf_json_as_string(sf_json_get(params, "class"));
    if (strncmp(name, "scheduler/", 10) != 0 || cls == NULL) continue;
    sf_sched_kind kind = sf_sched_kind_from_class_name(cls);
    if (kind == SF_SCHED_PNDM) {
      /* diffusers' PNDMScheduler.from_config(DDIM file) would run PRK warm-up steps; our
       * PNDM sampler is PLMS, so asking for it explicitly skips them. */
      CHECK(sf_sched_config_from_json(&a, sf_json_root(file), kind, &diag) == SF_OK);
      CHECK(a.kind == SF_SCHED_PNDM && a.skip_prk_steps == 1);
      continue;
    }
    CHECK(sf_sched_config_from_json(&a, sf_json_root(file), kind, &diag) == SF_OK);
    CHECK(sf_sched_config_from_json(&b, sf_json_get(params, "config"), kind, &diag) == SF_OK);
    /* the effective configs differ only in keys SD-1.5's file does not set: prediction type
     * and karras are the case's choice */
    b.prediction_type = a.prediction_type;
    b.use_karras_sigmas = a.use_karras_sigmas;
    CHECK_MSG(memcmp(&a, &b, sizeof a) == 0 || (isnan(a.sigma_min) && isnan(b.sigma_min) &&
                                                a.timestep_spacing == b.timestep_spacing &&
                                                a.steps_offset == b.steps_offset &&
                                                a.set_alpha_to_one == b.set_alpha_to_one &&
                                                a.lower_order_final == b.lower_order_final),
              "%s: from_config of the DDIM file differs from the effective config", name);
    CHECK_MSG(a.timestep_spacing == b.timestep_spacing, "%s: timestep_spacing default", name);
  }
  sf_json_free(file);

  sf_json_doc *doc = parse_text("{\"_class_name\": \"UniPCMultistepScheduler\", \"beta_schedule\": \"linear\"}");
  CHECK(doc != NULL);
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), 0, &diag) == SF_OK);
  CHECK(a.kind == SF_SCHED_DDIM && a.unknown_class == 1);
  sf_json_free(doc);
  doc = parse_text("{\"_class_name\": \"DDIMScheduler\", \"thresholding\": true}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), 0, &diag) == SF_ERR_UNSUPPORTED);
  sf_json_free(doc);
  /* thresholding is not an Euler key: ignored there, like diffusers does */
  doc = parse_text("{\"thresholding\": true, \"use_karras_sigmas\": true}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), SF_SCHED_EULER, &diag) == SF_OK);
  CHECK(a.use_karras_sigmas == 1);
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), SF_SCHED_EULER_A, &diag) == SF_OK);
  CHECK(a.use_karras_sigmas == 0);
  sf_json_free(doc);
  doc = parse_text("{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": false}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), 0, &diag) == SF_ERR_UNSUPPORTED);
  sf_json_free(doc);
  doc = parse_text("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": -Infinity,"
                   " \"algorithm_type\": \"sde-dpmsolver++\"}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), 0, &diag) == SF_ERR_UNSUPPORTED);
  sf_json_free(doc);
  doc = parse_text("{\"beta_schedule\": \"cosine\"}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), SF_SCHED_DDIM, &diag) != SF_OK);
  sf_json_free(doc);
  doc = parse_text("{\"steps_offset\": \"one\"}");
  CHECK(sf_sched_config_from_json(&a, sf_json_root(doc), SF_SCHED_DDIM, &diag) == SF_ERR_BAD_MODEL);
  sf_json_free(doc);
}

/* Structural checks and the schedule worked out by hand from
 * LCMScheduler.set_timesteps (k = 1000 // 50 = 20, origin timesteps 19, 39, ..., 999
 * reversed, indices floor(linspace(0, 50, steps, endpoint=False))). The references (tables,
 * c_skip/c_out, steps with their noise draws) are the models set's lcm/scheduler cases, run by
 * `snapfusion check` (ctest fixture_check_lcm). */
static void test_lcm(void) {
  sf_sched_config cfg;
  sf_sched_config_default(&cfg, SF_SCHED_LCM);
  cfg.steps_offset = 1;
  sf_scheduler *s = sf_scheduler_create(&cfg, &diag);
  CHECK(s != NULL);
  if (s == NULL) return;
  CHECK(sf_scheduler_set_timesteps(s, 4, 16, &diag) == SF_OK);
  CHECK_EQ_INT(sf_scheduler_num_steps(s), 4);
  /* indices 0, 12, 25, 37 -> 999 - 20*idx */
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 0), 999);
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 1), 759);
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 2), 499);
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 3), 259);
  CHECK(sf_scheduler_init_noise_sigma(s) == 1.0f);
  CHECK(sf_scheduler_step_draws_noise(s, 0) && !sf_scheduler_step_draws_noise(s, 3));
  /* 1 step: only 999; 50 steps: every origin timestep */
  CHECK(sf_scheduler_set_timesteps(s, 1, 16, &diag) == SF_OK);
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 0), 999);
  CHECK(sf_scheduler_set_timesteps(s, 50, 16, &diag) == SF_OK);
  CHECK_EQ_INT(sf_scheduler_timestep_int(s, 49), 19);
  CHECK(sf_scheduler_set_timesteps(s, 51, 16, &diag) != SF_OK);
  /* the last step returns the boundary-condition denoised sample without noise; with a
   * model that predicts the exact noise, x0 is recovered: c_out*x0 + c_skip*x_t */
  CHECK(sf_scheduler_set_timesteps(s, 4, 16, &diag) == SF_OK);
  float x[16], mo[16], x0[16], nz[16];
  const float *acp = sf_scheduler_alphas_cumprod(s);
  for (int i = 0; i < 16; i++) {
    x0[i] = 0.1f * (float)(i - 8);
    nz[i] = 0.05f * (float)((i * 7) % 5 - 2);
  }
  int64_t t = sf_scheduler_timestep_int(s, 3);
  for (int i = 0; i < 16; i++) {
    mo[i] = nz[i];
    x[i] = sqrtf(acp[t]) * x0[i] + sqrtf(1.0f - acp[t]) * nz[i];
  }
  CHECK(sf_scheduler_step(s, 3, mo, x, 16, NULL, &diag) == SF_OK);
  double scaled = 10.0 * (double)t, c_skip = 0.25 / (scaled * scaled + 0.25);
  double c_out = scaled / sqrt(scaled * scaled + 0.25);
  double maxd = 0;
  int nonfinite = 0;
  for (int i = 0; i < 16; i++) {
    double xt = sqrt((double)acp[t]) * x0[i] + sqrt(1.0 - (double)acp[t]) * nz[i];
    double want = c_out * x0[i] + c_skip * xt;
    if (!isfinite(x[i])) nonfinite++; /* counted: a NaN must not hide behind the max */
    else if (fabs(x[i] - want) > maxd) maxd = fabs(x[i] - want);
  }
  CHECK_MSG(nonfinite == 0, "LCM last step: %d non-finite values", nonfinite);
  CHECK_MSG(maxd < 1e-5, "LCM last step off by %g", maxd);
  /* a middle step needs its noise draw */
  CHECK(sf_scheduler_step(s, 0, mo, x, 16, NULL, &diag) == SF_ERR_INVALID_ARGUMENT);
  printf("LCM: timesteps 999/759/499/259 and step invariants checked\n");
  sf_scheduler_destroy(s);
}

int main(void) {
  test_lcm();
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  sf_json_doc *doc = open_manifest(fx);
  CHECK(doc != NULL);
  if (doc == NULL) TEST_MAIN_END();
  const sf_json *cases = sf_json_get(sf_json_root(doc), "cases");
  int nloops = 0, npipes = 0;
  for (size_t i = 0; i < cases->len; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    if (strcmp(name, "scheduler/alphas_cumprod") == 0) {
      test_alphas_cumprod(c);
    } else if (strcmp(name, "scheduler/timestep_tables") == 0) {
      test_timestep_tables(c);
    } else if (strncmp(name, "scheduler/", 10) == 0) {
      test_loop_case(c);
      nloops++;
    } else if (strncmp(name, "pipeline/", 9) == 0) {
      test_pipeline_case(c);
      npipes++;
    }
  }
  test_config_parsing(sf_json_root(doc));
  printf("%d scheduler loops, %d pipelines\n", nloops, npipes);
  CHECK(nloops >= 14);
  sf_json_free(doc);
  TEST_MAIN_END();
}
