/* The scheduler cases: the loops and timestep tables go through the public sf_schedule API
 * (the config is the case's JSON, written back out as text); the training tables, which
 * the public API does not expose, through the internal scheduler. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sched/scheduler.h"

/* ---- JSON node -> text ----------------------------------------------------------------------- */

typedef struct text_buf {
  char *p;
  size_t len, cap;
  int oom;
} text_buf;

static void buf_put(text_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(text_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void put_string(text_buf *b, const char *s, size_t n) {
  buf_puts(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_put(b, esc, 2);
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_puts(b, esc);
    } else {
      buf_put(b, (const char *)&s[i], 1);
    }
  }
  buf_puts(b, "\"");
}

static void put_json(text_buf *b, const sf_json *v) {
  switch (v->type) {
    case SF_JSON_NULL: buf_puts(b, "null"); break;
    case SF_JSON_BOOL: buf_puts(b, v->u.boolean ? "true" : "false"); break;
    /* the literal as written keeps every digit (and -Infinity) */
    case SF_JSON_NUMBER: buf_put(b, v->u.num.text, v->u.num.text_len); break;
    case SF_JSON_STRING: put_string(b, v->u.str, v->len); break;
    case SF_JSON_ARRAY:
      buf_puts(b, "[");
      for (size_t i = 0; i < v->len; i++) {
        if (i) buf_puts(b, ", ");
        put_json(b, &v->u.items[i]);
      }
      buf_puts(b, "]");
      break;
    case SF_JSON_OBJECT:
      buf_puts(b, "{");
      for (size_t i = 0; i < v->len; i++) {
        if (i) buf_puts(b, ", ");
        put_string(b, v->u.obj.keys[i], v->u.obj.key_lens[i]);
        buf_puts(b, ": ");
        put_json(b, &v->u.obj.values[i]);
      }
      buf_puts(b, "}");
      break;
  }
}

char *check_config_text(const sf_json *config, const char *cls) {
  text_buf b = {0};
  if (cls) {
    buf_puts(&b, "{\"_class_name\": ");
    put_string(&b, cls, strlen(cls));
    for (size_t i = 0; i < config->len; i++) {
      if (strcmp(config->u.obj.keys[i], "_class_name") == 0) continue;
      buf_puts(&b, ", ");
      put_string(&b, config->u.obj.keys[i], config->u.obj.key_lens[i]);
      buf_puts(&b, ": ");
      put_json(&b, &config->u.obj.values[i]);
    }
    buf_puts(&b, "}");
  } else {
    put_json(&b, config);
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* ---- scheduler/alphas_cumprod: the training tables (internal API) ---------------------------- */

static void run_alphas_cumprod(check_run *run, check_result *r) {
  const sf_json *config = sf_json_get(sf_json_get(run->c, "params"), "config");
  sf_sched_config cfg;
  sf_diag d = {0};
  if (sf_sched_config_from_json(&cfg, config, SF_SCHED_DDIM, &d) != SF_OK) {
    check_fail(r, "params.config: %s", d.msg);
    return;
  }
  sf_scheduler *s = sf_scheduler_create(&cfg, &d);
  if (s == NULL) {
    check_fail(r, "%s", d.msg);
    return;
  }
  float fin = sf_scheduler_final_alpha_cumprod(s);
  size_t n = (size_t)sf_scheduler_num_train_timesteps(s);
  check_compare(run, r, "betas", sf_scheduler_betas(s), n);
  check_compare(run, r, "alphas_cumprod", sf_scheduler_alphas_cumprod(s), n);
  check_compare(run, r, "final_alpha_cumprod", &fin, 1);
  sf_scheduler_destroy(s);
}

/* ---- scheduler/<kind>/<n>steps: the fake-model loops ------------------------------------------ */

static void compare_sigmas(check_run *run, check_result *r, const sf_schedule *sch, const char *output) {
  size_t count = 0;
  sf_status s = sf_schedule_sigmas(sch, NULL, 0, &count);
  if (s != SF_OK || count == 0) {
    check_fail(r, "%s: the schedule has no sigmas", output);
    return;
  }
  float *sig = malloc(count * sizeof *sig);
  if (sig == NULL) {
    check_fail(r, "out of memory");
    return;
  }
  s = sf_schedule_sigmas(sch, sig, count, &count);
  if (s != SF_OK) check_api_fail(r, "sf_schedule_sigmas", s, NULL);
  else check_compare(run, r, output, sig, count);
  free(sig);
}

static void run_loop(check_run *run, check_result *r) {
  const sf_json *params = sf_json_get(run->c, "params");
  const char *cls = sf_json_as_string(sf_json_get(params, "class"));
  const sf_json *config = sf_json_get(params, "config");
  int64_t steps = 0;
  if (cls == NULL || config == NULL || config->type != SF_JSON_OBJECT ||
      !sf_json_as_i64(sf_json_get(params, "num_inference_steps"), &steps) || steps < 1 || steps > 10000) {
    check_fail(r, "params lack class, config or num_inference_steps");
    return;
  }
  /* SF_SAMPLER_DEFAULT with the case's class as _class_name: the class comes from the file,
   * as it does for a model folder's scheduler_config.json */
  char *text = check_config_text(config, cls);
  sf_schedule *sch = NULL;
  size_t n = 0, n_phi = 0, n_step_noise = 0;
  float *noise = check_tensor(run, r, "in.noise", &n);
  float *phi = check_tensor(run, r, "in.phi", &n_phi);
  float *step_noise = NULL;
  float *x = NULL, *xin = NULL, *mo = NULL, *lat = NULL;
  double *ts = NULL;
  if (sf_st_find(run->file, "in.step_noise") != NULL)
    step_noise = check_tensor(run, r, "in.step_noise", &n_step_noise);
  if (text == NULL || noise == NULL || phi == NULL || n_phi != n || n == 0) {
    check_fail(r, text == NULL ? "out of memory" : "in.noise / in.phi missing or of different sizes");
    goto done;
  }
  sf_status s = sf_schedule_create(SF_SAMPLER_DEFAULT, text, NULL, &sch);
  if (s == SF_OK) s = sf_schedule_set_steps(sch, (int)steps, n);
  if (s != SF_OK) {
    check_api_fail(r, "sf_schedule_create/set_steps", s, NULL);
    goto done;
  }
  int evals = sf_schedule_evaluations(sch);
  ts = malloc((size_t)evals * sizeof *ts);
  x = malloc(n * sizeof *x);
  xin = malloc(n * sizeof *xin);
  mo = malloc(n * sizeof *mo);
  lat = malloc((size_t)evals * n * sizeof *lat);
  if (ts == NULL || x == NULL || xin == NULL || mo == NULL || lat == NULL) {
    check_fail(r, "out of memory");
    goto done;
  }
  for (int i = 0; i < evals; i++) ts[i] = sf_schedule_timestep(sch, i);
  /* int64 references (atol = rtol = 0) compare exactly; Euler's float32 ones within atol */
  check_compare_f64(run, r, "timesteps", ts, (size_t)evals);
  if (sf_json_get(sf_json_get(run->c, "outputs"), "sigmas")) compare_sigmas(run, r, sch, "sigmas");
  double sigma0 = sf_schedule_init_noise_sigma(sch);
  check_compare_f64(run, r, "init_noise_sigma", &sigma0, 1);

  /* params.fake_model: x = noise * init_noise_sigma; model_output = 0.1*x_in + c(t)*phi with
   * c(t) = 0.05*float(t)/1000 computed in double and applied as a float32 scalar */
  for (size_t k = 0; k < n; k++) x[k] = noise[k] * (float)sigma0;
  for (int i = 0; i < evals && r->verdict != CHECK_FAIL; i++) {
    float ct = (float)(0.05 * ts[i] / 1000.0);
    s = sf_schedule_scale_input(sch, i, x, xin, n);
    if (s != SF_OK) {
      check_api_fail(r, "sf_schedule_scale_input", s, NULL);
      break;
    }
    for (size_t k = 0; k < n; k++) mo[k] = 0.1f * xin[k] + ct * phi[k];
    const float *nz = NULL;
    if (sf_schedule_step_needs_noise(sch, i)) {
      /* EulerAncestral: the case's draws, one [latent] block per step, in order */
      if (step_noise == NULL || n_step_noise < (size_t)(i + 1) * n) {
        check_fail(r, "step %d needs a noise draw the case does not give (in.step_noise)", i);
        break;
      }
      nz = step_noise + (size_t)i * n;
    }
    s = sf_schedule_step(sch, i, mo, x, n, nz);
    if (s != SF_OK) {
      check_api_fail(r, "sf_schedule_step", s, NULL);
      break;
    }
    memcpy(lat + (size_t)i * n, x, n * sizeof *x);
  }
  if (r->verdict != CHECK_FAIL) {
    check_compare(run, r, "latents", lat, (size_t)evals * n);
    check_compare(run, r, "final", x, n);
  }
done:
  sf_schedule_destroy(sch);
  free(text);
  free(noise);
  free(phi);
  free(step_noise);
  free(ts);
  free(x);
  free(xin);
  free(mo);
  free(lat);
}

/* ---- scheduler/timestep_tables ---------------------------------------------------------------- */

/* The case's tolerance is {"*": {atol 0, rtol 0}} with the real allowances in its rule text:
 * "int64 timesteps exact; float timesteps/sigmas atol 1e-3 (timesteps) / rtol 1e-5 (sigmas)".
 * check_compare would apply 0/0 to the float tables (and finds no entry per output name), so
 * the rule text's values are applied here, as tests/test_scheduler.c does. */
static void compare_table(check_run *run, check_result *r, const char *key, const double *got, size_t n,
                          double atol, double rtol) {
  char name[300];
  snprintf(name, sizeof name, "out.%s", key);
  const sf_st_tensor *t = check_tensor_info(run, r, name);
  if (t == NULL) return;
  if ((size_t)t->numel != n) {
    check_fail(r, "%s: %zu values computed, reference has %zu", key, n, (size_t)t->numel);
    return;
  }
  double *ref = malloc((n ? n : 1) * sizeof *ref);
  if (ref == NULL) {
    check_fail(r, "out of memory");
    return;
  }
  if (t->dtype == SF_DTYPE_I64) {
    int64_t *iv = malloc((n ? n : 1) * sizeof *iv);
    if (iv == NULL || sf_st_to_i64(t, iv) != 0) {
      check_fail(r, "%s: unreadable int64 table", key);
      free(iv);
      free(ref);
      return;
    }
    for (size_t i = 0; i < n; i++) ref[i] = (double)iv[i];
    free(iv);
    atol = 0; /* int64 timesteps are exact */
    rtol = 0;
  } else {
    float *fv = malloc((n ? n : 1) * sizeof *fv);
    if (fv == NULL) {
      check_fail(r, "out of memory");
      free(ref);
      return;
    }
    sf_st_to_f32(t, fv);
    for (size_t i = 0; i < n; i++) ref[i] = fv[i];
    free(fv);
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]), allow = atol + rtol * fabs(ref[i]);
    if (!(e <= allow) && bad++ == 0) first = i;
    if (e > r->max_abs || e != e) r->max_abs = e;
    double ratio = allow > 0 ? e / allow : (e > 0 ? INFINITY : 0);
    if (ratio > r->worst_ratio || ratio != ratio) r->worst_ratio = ratio;
  }
  r->outputs++;
  if (bad)
    check_fail(r, "%s: %zu of %zu values out of tolerance (first at %zu: %.9g vs %.9g; atol %g rtol %g)", key, bad,
               n, first, got[first], ref[first], atol, rtol);
  free(ref);
}

static sf_sampler sampler_of_table_kind(const char *kind) {
  if (strcmp(kind, "ddim_eps") == 0) return SF_SAMPLER_DDIM;
  if (strcmp(kind, "pndm") == 0) return SF_SAMPLER_PNDM;
  if (strcmp(kind, "euler") == 0) return SF_SAMPLER_EULER;
  if (strcmp(kind, "euler_ancestral") == 0) return SF_SAMPLER_EULER_A;
  if (strcmp(kind, "dpmpp_2m") == 0 || strcmp(kind, "dpmpp_2m_karras") == 0) return SF_SAMPLER_DPMPP_2M;
  return SF_SAMPLER_DEFAULT;
}

/* One table: key "<kind>.<spacing>.<steps>" (the ".timesteps" suffix removed). */
static void run_one_table(check_run *run, check_result *r, const sf_json *kinds, const char *key) {
  char kind[64], spacing[32];
  const char *p1 = strchr(key, '.'), *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
  if (p1 == NULL || p2 == NULL || p1 - key >= (long)sizeof kind || p2 - p1 - 1 >= (long)sizeof spacing) {
    check_fail(r, "unexpected table key %s", key);
    return;
  }
  snprintf(kind, sizeof kind, "%.*s", (int)(p1 - key), key);
  snprintf(spacing, sizeof spacing, "%.*s", (int)(p2 - p1 - 1), p1 + 1);
  int steps = atoi(p2 + 1);
  sf_sampler sampler = sampler_of_table_kind(kind);
  const sf_json *config = sf_json_get(kinds, kind);
  sf_timestep_spacing sp = strcmp(spacing, "leading") == 0    ? SF_SPACING_LEADING
                           : strcmp(spacing, "trailing") == 0 ? SF_SPACING_TRAILING
                           : strcmp(spacing, "linspace") == 0 ? SF_SPACING_LINSPACE
                                                              : SF_SPACING_DEFAULT;
  if (sampler == SF_SAMPLER_DEFAULT || config == NULL || sp == SF_SPACING_DEFAULT || steps < 1) {
    check_fail(r, "table %s: unknown kind, config or spacing", key);
    return;
  }
  char *text = check_config_text(config, NULL);
  sf_params *ov = NULL;
  sf_schedule *sch = NULL;
  sf_status s = text ? sf_params_create(&ov) : SF_ERR_OUT_OF_MEMORY;
  if (s == SF_OK) s = sf_params_set_int(ov, SF_PARAM_TIMESTEP_SPACING, sp);
  if (s == SF_OK) s = sf_schedule_create(sampler, text, ov, &sch);
  if (s == SF_OK) s = sf_schedule_set_steps(sch, steps, 16);
  if (s != SF_OK) {
    check_api_fail(r, key, s, NULL);
  } else {
    int evals = sf_schedule_evaluations(sch);
    size_t nsig = 0;
    sf_schedule_sigmas(sch, NULL, 0, &nsig);
    size_t cap = (size_t)evals + nsig + 1;
    double *got = malloc(cap * sizeof *got);
    float *sig = malloc((nsig + 1) * sizeof *sig);
    char name[300];
    if (got == NULL || sig == NULL) {
      check_fail(r, "out of memory");
    } else {
      for (int i = 0; i < evals; i++) got[i] = sf_schedule_timestep(sch, i);
      snprintf(name, sizeof name, "%s.timesteps", key);
      compare_table(run, r, name, got, (size_t)evals, 1e-3, 0);
      snprintf(name, sizeof name, "%s.sigmas", key);
      char out_name[320];
      snprintf(out_name, sizeof out_name, "out.%s", name);
      int has_ref = sf_st_find(run->file, out_name) != NULL;
      if (has_ref != (nsig > 0)) {
        check_fail(r, "%s: reference %s sigmas, the schedule %s", key, has_ref ? "has" : "has no",
                   nsig ? "has" : "has none");
      } else if (nsig > 0) {
        s = sf_schedule_sigmas(sch, sig, nsig, &nsig);
        if (s != SF_OK) {
          check_api_fail(r, "sf_schedule_sigmas", s, NULL);
        } else {
          for (size_t i = 0; i < nsig; i++) got[i] = sig[i];
          compare_table(run, r, name, got, nsig, 0, 1e-5);
        }
      }
    }
    free(got);
    free(sig);
  }
  sf_schedule_destroy(sch);
  sf_params_destroy(ov);
  free(text);
}

static void run_timestep_tables(check_run *run, check_result *r) {
  const sf_json *kinds = sf_json_get(sf_json_get(run->c, "params"), "kinds");
  const sf_json *outs = sf_json_get(run->c, "outputs");
  if (kinds == NULL || outs == NULL || outs->type != SF_JSON_OBJECT) {
    check_fail(r, "params.kinds or outputs missing");
    return;
  }
  size_t tables = 0;
  for (size_t o = 0; o < outs->len; o++) {
    char key[256];
    snprintf(key, sizeof key, "%s", outs->u.obj.keys[o]);
    size_t len = strlen(key);
    if (len <= 10 || strcmp(key + len - 10, ".timesteps") != 0) continue;
    key[len - 10] = '\0';
    run_one_table(run, r, kinds, key);
    tables++;
  }
  if (tables == 0) check_fail(r, "no tables in the case");
}

void check_run_scheduler(check_run *run, check_result *r) {
  const char *name = sf_json_as_string(sf_json_get(run->c, "name"));
  if (name == NULL) {
    check_fail(r, "case has no name");
  } else if (strcmp(name, "scheduler/alphas_cumprod") == 0) {
    run_alphas_cumprod(run, r);
  } else if (strcmp(name, "scheduler/timestep_tables") == 0) {
    run_timestep_tables(run, r);
  } else {
    run_loop(run, r);
  }
}
