/* The LoRA cases ("lora/..."): the case's base model folder (its "model" up to " + ") loaded with
 * the LoRAs of params.loras (file relative to the set, scale) through SF_PARAM_LORAS, then the
 * component's usual comparison. The UNet cases pass their timestep as one I64 for the batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const check_runner *runner_of(const char *component) {
  for (const check_runner *r = check_runners; r->component != NULL; r++)
    if (strcmp(r->component, component) == 0) return r;
  return NULL;
}

static void run_unet(check_run *run, check_result *r) {
  sf_pipeline *pipe = check_pipeline(run, r, run->state->model_dir, NULL);
  if (pipe == NULL) return;
  const sf_st_tensor *st = check_tensor_info(run, r, "in.sample");
  const sf_st_tensor *et = check_tensor_info(run, r, "in.encoder_hidden_states");
  const sf_st_tensor *tt = check_tensor_info(run, r, "in.timestep");
  if (st == NULL || et == NULL || tt == NULL) return;
  if (st->ndim != 4 || et->ndim != 3 || tt->numel != 1) {
    check_fail(r, "unexpected input shapes");
    return;
  }
  int64_t t64 = 0;
  if (sf_st_to_i64(tt, &t64) != 0) {
    check_fail(r, "in.timestep is not an integer");
    return;
  }
  const size_t batch = (size_t)st->shape[0];
  size_t n_sample = 0;
  float *sample = check_tensor(run, r, "in.sample", &n_sample);
  float *text = check_tensor(run, r, "in.encoder_hidden_states", NULL);
  float *t = malloc(batch * sizeof *t);
  float *out = malloc((n_sample ? n_sample : 1) * sizeof *out);
  if (sample && text && t && out) {
    for (size_t i = 0; i < batch; i++) t[i] = (float)t64;
    size_t n_text = batch * (size_t)et->shape[1] * (size_t)et->shape[2];
    sf_status s = sf_unet_predict_v2(pipe, sample, n_sample, batch, (size_t)st->shape[2], (size_t)st->shape[3], t,
                                     batch, text, n_text, (size_t)et->shape[1], out, n_sample);
    if (s != SF_OK) check_api_fail(r, "sf_unet_predict_v2", s, run->state->ctx);
    else check_compare(run, r, "noise_pred", out, n_sample);
  } else if (r->verdict != CHECK_FAIL) {
    check_fail(r, "out of memory");
  }
  free(sample);
  free(text);
  free(t);
  free(out);
}

void check_run_lora(check_run *run, check_result *r) {
  const char *model = sf_json_as_string(sf_json_get(run->c, "model"));
  const char *component = sf_json_as_string(sf_json_get(run->c, "component"));
  const sf_json *loras = sf_json_get(sf_json_get(run->c, "params"), "loras");
  if (model == NULL || component == NULL || loras == NULL || loras->type != SF_JSON_ARRAY || loras->len == 0) {
    check_fail(r, "LoRA case without model, component or params.loras");
    return;
  }
  char dir[512];
  snprintf(dir, sizeof dir, "%s", model);
  char *plus = strstr(dir, " + ");
  if (plus) *plus = '\0';
  /* "tiny-sd-mini/unet": the pipeline folder, one network loaded */
  char spec[2048];
  size_t off = 0;
  spec[0] = '\0';
  for (size_t i = 0; i < loras->len; i++) {
    const sf_json *l = sf_json_at(loras, i);
    const char *file = sf_json_as_string(sf_json_get(l, "file"));
    double scale = 0;
    if (file == NULL || !sf_json_as_double(sf_json_get(l, "scale"), &scale)) {
      check_fail(r, "params.loras[%zu] lacks file or scale", i);
      return;
    }
    int n = snprintf(spec + off, sizeof spec - off, "%s%s/%s\t%.17g", i ? "\n" : "", run->state->set_dir, file, scale);
    if (n < 0 || (size_t)n >= sizeof spec - off) {
      check_fail(r, "LoRA list too long");
      return;
    }
    off += (size_t)n;
  }
  run->state->model_dir = dir;
  run->state->loras = spec;
  if (strcmp(component, "unet") == 0) {
    run_unet(run, r);
  } else {
    const check_runner *runner = runner_of(component);
    if (runner == NULL || runner->run == NULL) check_skip(r, "component '%s' not supported by this build", component);
    else runner->run(run, r);
  }
  run->state->model_dir = NULL;
  run->state->loras = NULL;
}
