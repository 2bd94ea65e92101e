/* The LCM cases (names "lcm/..."), by component:
 *   lcm_guidance_embedding  get_guidance_scale_embedding (internal: no public call computes it alone)
 *   unet                    a UNet with time_cond_proj_dim through sf_unet_predict_v2, loaded with
 *                           SF_PARAM_UNET_GUIDANCE = the case's guidance scale
 *   scheduler               LCMScheduler tables (timesteps through sf_schedule, c_skip/c_out through
 *                           the internal scheduler) and fake-model loops (latents through
 *                           sf_schedule_step with the case's step noise, denoised internal)
 *   pipeline                LatentConsistencyModelPipeline generations (the common pipeline runner) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/unet.h"
#include "sched/scheduler.h"

/* ---- guidance embedding ------------------------------------------------------------------------- */

static void run_embedding(check_run *run, check_result *r) {
  const sf_st_tensor *wt = check_tensor_info(run, r, "in.w");
  const sf_json *out = sf_json_get(sf_json_get(sf_json_get(run->c, "outputs"), "embedding"), "shape");
  int64_t dim = 0;
  if (wt == NULL) return;
  if (out == NULL || out->type != SF_JSON_ARRAY || out->len != 2 || !sf_json_as_i64(sf_json_at(out, 1), &dim) ||
      dim < 4 || dim > (1 << 20)) {
    check_fail(r, "outputs.embedding.shape is not [n, dim >= 4]");
    return;
  }
  size_t n = 0;
  float *w = check_tensor(run, r, "in.w", &n);
  float *emb = w ? malloc((n ? n : 1) * (size_t)dim * sizeof *emb) : NULL;
  if (w && emb) {
    sf_guidance_embedding_f32(w, n, (size_t)dim, emb);
    check_compare(run, r, "embedding", emb, n * (size_t)dim);
  } else if (r->verdict != CHECK_FAIL) {
    check_fail(r, "out of memory");
  }
  free(w);
  free(emb);
}

/* ---- UNet ------------------------------------------------------------------------------------ */

/* "tiny-lcm/unet (...)" -> "tiny-lcm/unet" */
static void model_dir(const char *model, char *dir, size_t cap) {
  snprintf(dir, cap, "%s", model ? model : "");
  char *paren = strstr(dir, " (");
  if (paren) *paren = '\0';
}

/* One LCM UNet call on items [b0, b1) of the case's batch, the pipeline loaded with
 * SF_PARAM_UNET_GUIDANCE = guidance. */
static void unet_items(check_run *run, check_result *r, const char *dir, double guidance, const float *sample,
                       const float *t, const float *text, size_t b0, size_t b1, const size_t dims[4], size_t tokens,
                       float *out) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", run->state->set_dir, dir);
  size_t per = dims[1] * dims[2] * dims[3], per_text = tokens * dims[0], n = b1 - b0;
  sf_params *opts = NULL;
  sf_pipeline *pipe = NULL;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK) s = sf_params_set_float(opts, SF_PARAM_UNET_GUIDANCE, guidance);
  if (s == SF_OK && run->state->weights != SF_WEIGHT_DEFAULT)
    s = sf_params_set_int(opts, SF_PARAM_WEIGHT_TYPE, run->state->weights);
  if (s == SF_OK) s = sf_pipeline_load(run->state->ctx, path, opts, &pipe);
  if (s == SF_OK)
    s = sf_unet_predict_v2(pipe, sample + b0 * per, n * per, n, dims[2], dims[3], t + b0, n, text + b0 * per_text,
                           n * per_text, tokens, out + b0 * per, n * per);
  if (s != SF_OK) check_api_fail(r, pipe ? "sf_unet_predict_v2" : dir, s, run->state->ctx);
  sf_pipeline_destroy(pipe);
  sf_params_destroy(opts);
}

/* The guidance of batch item b enters as in.timestep_cond = embedding(in.w[b]); the public call
 * takes the guidance scale (w + 1) at load, so items are run in groups of equal w. */
static void run_unet(check_run *run, check_result *r) {
  const sf_st_tensor *st = check_tensor_info(run, r, "in.sample");
  const sf_st_tensor *et = check_tensor_info(run, r, "in.encoder_hidden_states");
  const sf_st_tensor *tt = check_tensor_info(run, r, "in.timestep");
  if (st == NULL || et == NULL || tt == NULL) return;
  if (st->ndim != 4 || et->ndim != 3 || et->shape[0] != st->shape[0] ||
      (tt->numel != 1 && tt->numel != (uint64_t)st->shape[0])) {
    check_fail(r, "unexpected input shapes");
    return;
  }
  size_t batch = (size_t)st->shape[0], n_sample = 0, n_text = 0, n_w = 0;
  const size_t dims[4] = {(size_t)et->shape[2], (size_t)st->shape[1], (size_t)st->shape[2], (size_t)st->shape[3]};
  double g_param = 0;
  const int have_g = sf_json_as_double(sf_json_get(sf_json_get(run->c, "params"), "guidance_scale"), &g_param);
  float *w = sf_st_find(run->file, "in.w") ? check_tensor(run, r, "in.w", &n_w) : NULL;
  if (w == NULL && !have_g) {
    if (r->verdict != CHECK_FAIL) check_fail(r, "no in.w and no params.guidance_scale");
    return;
  }
  if (w != NULL && n_w != batch) {
    check_fail(r, "in.w has %zu values for batch %zu", n_w, batch);
    free(w);
    return;
  }
  char dir[512];
  model_dir(sf_json_as_string(sf_json_get(run->c, "model")), dir, sizeof dir);
  int64_t *t64 = malloc(batch * sizeof *t64);
  float *t = malloc(batch * sizeof *t);
  float *sample = check_tensor(run, r, "in.sample", &n_sample);
  float *text = check_tensor(run, r, "in.encoder_hidden_states", &n_text);
  float *out = malloc((n_sample ? n_sample : 1) * sizeof *out);
  if (t64 == NULL || t == NULL || sample == NULL || text == NULL || out == NULL) {
    if (r->verdict != CHECK_FAIL) check_fail(r, "out of memory");
  } else if (sf_st_to_i64(tt, t64) != 0) {
    check_fail(r, "in.timestep is not an integer tensor");
  } else {
    for (size_t b = 0; b < batch; b++) t[b] = (float)t64[tt->numel == 1 ? 0 : b];
    for (size_t b0 = 0, b1; b0 < batch && r->verdict != CHECK_FAIL; b0 = b1) {
      for (b1 = b0 + 1; w && b1 < batch && w[b1] == w[b0];) b1++;
      if (w == NULL) b1 = batch;
      /* the scale whose w = float32(scale - 1) is the case's */
      double guidance = w ? (double)w[b0] + 1.0 : g_param;
      unet_items(run, r, dir, guidance, sample, t, text, b0, b1, dims, (size_t)et->shape[1], out);
    }
    if (r->verdict != CHECK_FAIL) check_compare(run, r, "noise_pred", out, n_sample);
  }
  free(w);
  free(t64);
  free(t);
  free(sample);
  free(text);
  free(out);
}

/* ---- scheduler ------------------------------------------------------------------------------- */

/* The internal scheduler of the case's config with n steps for latents of count floats. */
static sf_scheduler *internal_scheduler(const sf_json *config, int n, size_t count, check_result *r) {
  sf_sched_config cfg;
  sf_diag d = {0};
  sf_scheduler *s = NULL;
  if (sf_sched_config_from_json(&cfg, config, (sf_sched_kind)0, &d) != SF_OK ||
      (s = sf_scheduler_create(&cfg, &d)) == NULL || sf_scheduler_set_timesteps(s, n, count, &d) != SF_OK) {
    sf_scheduler_destroy(s);
    check_fail(r, "internal scheduler: %s", d.msg);
    return NULL;
  }
  return s;
}

/* The public schedule of the case's config (its _class_name picks the sampler). */
static sf_schedule *public_schedule(const sf_json *config, int n, size_t count, check_result *r) {
  char *text = check_config_text(config, NULL);
  sf_schedule *sch = NULL;
  sf_status s = text ? sf_schedule_create(SF_SAMPLER_DEFAULT, text, NULL, &sch) : SF_ERR_OUT_OF_MEMORY;
  if (s == SF_OK) s = sf_schedule_set_steps(sch, n, count);
  free(text);
  if (s != SF_OK) {
    check_api_fail(r, "sf_schedule_create/set_steps", s, NULL);
    sf_schedule_destroy(sch);
    return NULL;
  }
  return sch;
}

/* steps<n>.timesteps / .c_skip / .c_out for every n the case lists; alphas_cumprod and
 * final_alpha_cumprod when present. */
static void run_tables(check_run *run, check_result *r, const sf_json *config) {
  const sf_json *outs = sf_json_get(run->c, "outputs");
  size_t tables = 0;
  for (size_t o = 0; outs && o < outs->len && r->verdict != CHECK_FAIL; o++) {
    const char *key = outs->u.obj.keys[o];
    int n = 0, used = 0;
    if (sscanf(key, "steps%d.timesteps%n", &n, &used) != 1 || key[used] != '\0' || n < 1 || n > 100000) continue;
    tables++;
    sf_schedule *sch = public_schedule(config, n, 16, r);
    sf_scheduler *in = sch ? internal_scheduler(config, n, 16, r) : NULL;
    int evals = sch ? sf_schedule_evaluations(sch) : 0;
    double *ts = in ? malloc((size_t)evals * sizeof *ts) : NULL;
    float *cs = ts ? malloc(2 * (size_t)evals * sizeof *cs) : NULL;
    if (in && cs == NULL) check_fail(r, "out of memory");
    if (cs) {
      for (int i = 0; i < evals; i++) {
        ts[i] = sf_schedule_timestep(sch, i);
        if (!sf_scheduler_lcm_scalings(in, i, &cs[i], &cs[evals + i])) check_fail(r, "no LCM scalings at %d", i);
      }
      char name[64];
      snprintf(name, sizeof name, "steps%d.timesteps", n);
      check_compare_f64(run, r, name, ts, (size_t)evals);
      snprintf(name, sizeof name, "steps%d.c_skip", n);
      check_compare(run, r, name, cs, (size_t)evals);
      snprintf(name, sizeof name, "steps%d.c_out", n);
      check_compare(run, r, name, cs + evals, (size_t)evals);
    }
    free(ts);
    free(cs);
    sf_scheduler_destroy(in);
    sf_schedule_destroy(sch);
  }
  if (tables == 0 && r->verdict != CHECK_FAIL) check_fail(r, "no steps<n>.timesteps tables in the case");
  if (r->verdict == CHECK_FAIL) return;
  sf_schedule *sch = public_schedule(config, 1, 16, r);
  if (sch == NULL) return;
  size_t count = 0;
  sf_status s = sf_schedule_get_table(sch, SF_TABLE_ALPHAS_CUMPROD, NULL, 0, &count);
  float *acp = s == SF_OK ? malloc((count ? count : 1) * sizeof *acp) : NULL;
  if (acp && sf_schedule_get_table(sch, SF_TABLE_ALPHAS_CUMPROD, acp, count, &count) == SF_OK) {
    if (sf_json_get(outs, "alphas_cumprod")) check_compare(run, r, "alphas_cumprod", acp, count);
    double fin = sf_schedule_final_alpha_cumprod(sch);
    if (sf_json_get(outs, "final_alpha_cumprod")) check_compare_f64(run, r, "final_alpha_cumprod", &fin, 1);
  } else {
    check_fail(r, "sf_schedule_get_table failed");
  }
  free(acp);
  sf_schedule_destroy(sch);
}

/* The fake-model loop: model_output = 0.1*x + c(t)*phi, c(t) = 0.05*t/1000 as a float32 scalar;
 * step i takes in.step_noise[i] when it draws noise. */
static void run_steps(check_run *run, check_result *r, const sf_json *config, int steps) {
  size_t n = 0, n_phi = 0, n_step_noise = 0;
  float *noise = check_tensor(run, r, "in.noise", &n);
  float *phi = check_tensor(run, r, "in.phi", &n_phi);
  float *step_noise = check_tensor(run, r, "in.step_noise", &n_step_noise);
  sf_schedule *sch = NULL;
  sf_scheduler *in = NULL;
  float *x = NULL, *mo = NULL, *lat = NULL, *den = NULL;
  double *ts = NULL;
  if (noise == NULL || phi == NULL || step_noise == NULL) goto done;
  if (n_phi != n || n == 0) {
    check_fail(r, "in.noise and in.phi differ in size");
    goto done;
  }
  if ((sch = public_schedule(config, steps, n, r)) == NULL || (in = internal_scheduler(config, steps, n, r)) == NULL)
    goto done;
  int evals = sf_schedule_evaluations(sch);
  ts = malloc((size_t)evals * sizeof *ts);
  x = malloc(n * sizeof *x);
  mo = malloc(n * sizeof *mo);
  lat = malloc((size_t)evals * n * sizeof *lat);
  den = malloc((size_t)evals * n * sizeof *den);
  if (ts == NULL || x == NULL || mo == NULL || lat == NULL || den == NULL) {
    check_fail(r, "out of memory");
    goto done;
  }
  float sigma0 = (float)sf_schedule_init_noise_sigma(sch);
  for (size_t k = 0; k < n; k++) x[k] = noise[k] * sigma0;
  for (int i = 0; i < evals && r->verdict != CHECK_FAIL; i++) {
    ts[i] = sf_schedule_timestep(sch, i);
    float ct = (float)(0.05 * ts[i] / 1000.0);
    sf_status s = sf_schedule_scale_input(sch, i, x, mo, n);
    for (size_t k = 0; s == SF_OK && k < n; k++) mo[k] = 0.1f * mo[k] + ct * phi[k];
    sf_diag d = {0};
    if (s == SF_OK && sf_scheduler_lcm_denoised(in, i, mo, x, den + (size_t)i * n, n, &d) != SF_OK) {
      check_fail(r, "denoised at step %d: %s", i, d.msg);
      break;
    }
    const float *nz = NULL;
    if (s == SF_OK && sf_schedule_step_needs_noise(sch, i)) {
      if (n_step_noise < (size_t)(i + 1) * n) {
        check_fail(r, "step %d needs a noise draw the case does not give (in.step_noise)", i);
        break;
      }
      nz = step_noise + (size_t)i * n;
    }
    if (s == SF_OK) s = sf_schedule_step(sch, i, mo, x, n, nz);
    if (s != SF_OK) {
      check_api_fail(r, "sf_schedule_scale_input/step", s, NULL);
      break;
    }
    memcpy(lat + (size_t)i * n, x, n * sizeof *x);
  }
  if (r->verdict != CHECK_FAIL) {
    check_compare_f64(run, r, "timesteps", ts, (size_t)evals);
    check_compare(run, r, "latents", lat, (size_t)evals * n);
    check_compare(run, r, "denoised", den, (size_t)evals * n);
  }
done:
  sf_schedule_destroy(sch);
  sf_scheduler_destroy(in);
  free(noise);
  free(phi);
  free(step_noise);
  free(ts);
  free(x);
  free(mo);
  free(lat);
  free(den);
}

static void run_scheduler(check_run *run, check_result *r) {
  const sf_json *params = sf_json_get(run->c, "params");
  const sf_json *config = sf_json_get(params, "config");
  if (config == NULL || config->type != SF_JSON_OBJECT) {
    check_fail(r, "params.config missing");
    return;
  }
  int64_t steps = 0;
  if (sf_st_find(run->file, "in.noise") == NULL) {
    run_tables(run, r, config);
  } else if (!sf_json_as_i64(sf_json_get(params, "num_inference_steps"), &steps) || steps < 1 || steps > 100000) {
    check_fail(r, "params.num_inference_steps missing");
  } else {
    run_steps(run, r, config, (int)steps);
  }
}

/* ---- dispatch -------------------------------------------------------------------------------- */

void check_run_lcm(check_run *run, check_result *r) {
  const char *component = sf_json_as_string(sf_json_get(run->c, "component"));
  if (component == NULL) check_fail(r, "case has no component");
  else if (strcmp(component, "lcm_guidance_embedding") == 0) run_embedding(run, r);
  else if (strcmp(component, "unet") == 0) run_unet(run, r);
  else if (strcmp(component, "scheduler") == 0) run_scheduler(run, r);
  else if (strcmp(component, "pipeline") == 0) check_run_pipeline(run, r);
  else check_skip(r, "LCM component '%s' not supported by this build", component);
}
