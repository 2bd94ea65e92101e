/* The pipeline fixture cases: whole generations through the public job API, from the
 * prompt strings (tokenizer and text encoder included), with the case's explicit latents
 * or its seed, compared on the float image and on the RGB8 image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The rule for RGB8 images is stricter than the manifest's 1%. */
#define MAX_FRACTION_U8 0.001

static sf_sampler sampler_of_class(const char *cls) {
  static const struct { const char *cls; sf_sampler s; } map[] = {
      {"DDIMScheduler", SF_SAMPLER_DDIM},
      {"PNDMScheduler", SF_SAMPLER_PNDM},
      {"EulerDiscreteScheduler", SF_SAMPLER_EULER},
      {"EulerAncestralDiscreteScheduler", SF_SAMPLER_EULER_A},
      {"DPMSolverMultistepScheduler", SF_SAMPLER_DPMPP_2M},
      {"LCMScheduler", SF_SAMPLER_LCM}};
  for (size_t i = 0; cls && i < sizeof map / sizeof map[0]; i++)
    if (strcmp(map[i].cls, cls) == 0) return map[i].s;
  return SF_SAMPLER_DEFAULT;
}

static void compare_u8(check_run *run, check_result *r, const uint8_t *got, size_t n) {
  const sf_st_tensor *t = check_tensor_info(run, r, "out.image_uint8");
  if (t == NULL) return;
  if (t->numel != n || t->dtype != SF_DTYPE_U8) {
    check_fail(r, "image_uint8: %zu values computed, reference has %llu", n, (unsigned long long)t->numel);
    return;
  }
  check_digest(r, got, n);
  const uint8_t *ref = t->data;
  size_t differ = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    size_t d = got[i] > ref[i] ? (size_t)(got[i] - ref[i]) : (size_t)(ref[i] - got[i]);
    differ += d != 0;
    if (d > worst) worst = d;
  }
  r->outputs++;
  if (worst > 1 || (double)differ > MAX_FRACTION_U8 * (double)n)
    check_fail(r, "image_uint8: %zu of %zu values differ, by up to %zu (allowed: 1, on %.1f%% of values)", differ, n,
               worst, 100 * MAX_FRACTION_U8);
}

void check_run_pipeline(check_run *run, check_result *r) {
  const sf_json *params = sf_json_get(run->c, "params");
  char dir[512];
  const char *model = sf_json_as_string(sf_json_get(run->c, "model"));
  snprintf(dir, sizeof dir, "%s", run->state->model_dir ? run->state->model_dir : model ? model : "tiny-sd");
  char *paren = strstr(dir, " ("); /* "single-file/x.safetensors (== x folder)" */
  if (paren) *paren = '\0';
  sf_pipeline *pipe = check_pipeline(run, r, dir, NULL);
  if (pipe == NULL) return;
  sf_params *p = NULL;
  sf_status s = sf_params_create(&p);
  int64_t width = 0, height = 0, steps = 0;
  double guidance = 0, strength = 0;
  const char *prompt = sf_json_as_string(sf_json_get(params, "prompt"));
  const char *negative = sf_json_as_string(sf_json_get(params, "negative_prompt"));
  const sf_json *sched_cfg = sf_json_get(params, "scheduler_config");
  const char *pred = sf_json_as_string(sf_json_get(sched_cfg, "prediction_type"));
  if (s != SF_OK || prompt == NULL || !sf_json_as_i64(sf_json_get(params, "width"), &width) ||
      !sf_json_as_i64(sf_json_get(params, "height"), &height) ||
      !sf_json_as_i64(sf_json_get(params, "num_inference_steps"), &steps) ||
      !sf_json_as_double(sf_json_get(params, "guidance_scale"), &guidance)) {
    check_fail(r, "case params lack prompt/size/steps/guidance");
    sf_params_destroy(p);
    return;
  }
  sf_params_set_string(p, SF_PARAM_PROMPT, prompt);
  if (negative) sf_params_set_string(p, SF_PARAM_NEGATIVE_PROMPT, negative);
  sf_params_set_int(p, SF_PARAM_WIDTH, width);
  sf_params_set_int(p, SF_PARAM_HEIGHT, height);
  sf_params_set_int(p, SF_PARAM_STEPS, steps);
  sf_params_set_float(p, SF_PARAM_GUIDANCE_SCALE, guidance);
  sf_params_set_int(p, SF_PARAM_SAMPLER,
                    sampler_of_class(sf_json_as_string(sf_json_get(params, "scheduler_class"))));
  if (pred && strcmp(pred, "v_prediction") == 0) sf_params_set_int(p, SF_PARAM_PREDICTION_TYPE, SF_PREDICTION_V);
  if (sf_json_as_double(sf_json_get(params, "strength"), &strength))
    sf_params_set_float(p, SF_PARAM_STRENGTH, strength);

  /* The seed feeds the draws after the initial latents too (LCM's step noise), so it is set
   * whenever the case has one, explicit latents or not. */
  float *latents = NULL;
  const sf_st_tensor *seed_t = sf_st_find(run->file, "in.seed");
  int64_t seed = 0;
  if (seed_t != NULL && sf_st_to_i64(seed_t, &seed) != 0) check_fail(r, "in.seed is not an integer");
  else if (seed_t != NULL) sf_params_set_int(p, SF_PARAM_SEED, seed);
  if (sf_st_find(run->file, "in.latents")) {
    size_t n = 0;
    latents = check_tensor(run, r, "in.latents", &n);
    if (latents) sf_params_set_floats(p, SF_PARAM_LATENTS, latents, n);
  } else if (seed_t == NULL) {
    check_fail(r, "case has neither latents nor a seed");
  }
  const sf_st_tensor *init = sf_st_find(run->file, "in.init_image_uint8");
  if (init != NULL) {
    if (init->ndim != 3 || init->shape[2] != 3 || init->dtype != SF_DTYPE_U8)
      check_fail(r, "in.init_image_uint8 is not [h, w, 3] U8");
    else
      sf_params_set_init_image(p, init->data, (uint32_t)init->shape[1], (uint32_t)init->shape[0],
                               (size_t)init->shape[1] * 3);
  }
  sf_job *job = NULL;
  if (r->verdict != CHECK_FAIL) {
    s = sf_job_start(pipe, p, &job);
    if (s != SF_OK) check_api_fail(r, "sf_job_start", s, run->state->ctx);
  }
  while (job && r->verdict != CHECK_FAIL && sf_job_steps_done(job) < sf_job_steps_total(job)) {
    s = sf_job_step(job);
    if (s != SF_OK) check_api_fail(r, "sf_job_step", s, run->state->ctx);
  }
  if (job && r->verdict != CHECK_FAIL) {
    /* The float image: decode the final latents, then diffusers' (x/2+0.5).clamp(0,1), NHWC. */
    size_t h = (size_t)height / 8, w = (size_t)width / 8, n_lat = 4 * h * w, H = (size_t)height, W = (size_t)width;
    float *lat = malloc(n_lat * sizeof *lat), *img = malloc(3 * H * W * sizeof *img),
          *nhwc = malloc(3 * H * W * sizeof *nhwc);
    if (lat && img && nhwc && sf_job_latents(job, lat, n_lat) == SF_OK &&
        (s = sf_decode_latents(pipe, SF_NET_VAE_DECODER, lat, 1, h, w, 0, img)) == SF_OK) {
      for (size_t c = 0; c < 3; c++)
        for (size_t i = 0; i < H * W; i++) {
          float v = img[c * H * W + i] / 2.0f + 0.5f;
          nhwc[i * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
      check_compare(run, r, "image", nhwc, 3 * H * W);
    } else {
      check_api_fail(r, "decoding the final latents", s, run->state->ctx);
    }
    free(lat);
    free(img);
    free(nhwc);
    sf_image *image = NULL;
    s = sf_job_finish(job, &image);
    if (s != SF_OK) {
      check_api_fail(r, "sf_job_finish", s, run->state->ctx);
    } else if (sf_image_width(image) != (uint32_t)width || sf_image_height(image) != (uint32_t)height) {
      check_fail(r, "image is %ux%u", sf_image_width(image), sf_image_height(image));
    } else {
      compare_u8(run, r, sf_image_pixels(image), 3 * (size_t)width * (size_t)height);
    }
    sf_image_destroy(image);
  }
  sf_job_destroy(job);
  free(latents);
  sf_params_destroy(p);
}
