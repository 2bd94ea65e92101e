/* LCM-distilled models through the public API, on the model-format set's tiny-lcm folder
 * (LatentConsistencyModelPipeline, LCMScheduler, a UNet with time_cond_proj_dim): its defaults
 * (4 steps, guidance 8) when the caller sets neither, no unconditional batch, the guidance
 * reaching the UNet as an embedding (generations and sf_unet_predict_v2 with
 * SF_PARAM_UNET_GUIDANCE), and that a standard SD folder keeps its own defaults. The reference
 * values themselves are checked by `snapfusion check` (ctest fixture_check_lcm). */
#include <snapfusion.h>

#include "test.h"

static sf_context *ctx;
static char lcm_dir[4300], sd_dir[4300];

static sf_pipeline *load(const char *dir, double unet_guidance) {
  sf_params *o = NULL;
  sf_pipeline *p = NULL;
  sf_params_create(&o);
  if (!isnan(unet_guidance)) sf_params_set_float(o, SF_PARAM_UNET_GUIDANCE, unet_guidance);
  sf_status s = sf_pipeline_load(ctx, dir, o, &p);
  CHECK_MSG(s == SF_OK, "%s: %s", dir, sf_context_last_error(ctx));
  sf_params_destroy(o);
  return p;
}

/* A 64x64 generation, seed 2024; steps / guidance set only when >= 0 / not NaN. */
static sf_image *generate(sf_pipeline *pipe, int steps, double guidance, int *steps_total) {
  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PROMPT, "a watercolor fox sitting in tall grass");
  sf_params_set_int(p, SF_PARAM_WIDTH, 64);
  sf_params_set_int(p, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(p, SF_PARAM_SEED, 2024);
  if (steps >= 0) sf_params_set_int(p, SF_PARAM_STEPS, steps);
  if (!isnan(guidance)) sf_params_set_float(p, SF_PARAM_GUIDANCE_SCALE, guidance);
  sf_job *job = NULL;
  sf_image *img = NULL;
  sf_status s = sf_job_start(pipe, p, &job);
  CHECK_MSG(s == SF_OK, "sf_job_start: %s", sf_context_last_error(ctx));
  if (s == SF_OK) {
    *steps_total = sf_job_steps_total(job);
    s = sf_job_finish(job, &img);
    CHECK_MSG(s == SF_OK, "sf_job_finish: %s", sf_context_last_error(ctx));
  }
  sf_job_destroy(job);
  sf_params_destroy(p);
  return img;
}

static int same_image(const sf_image *a, const sf_image *b) {
  return a && b && sf_image_width(a) == sf_image_width(b) && sf_image_height(a) == sf_image_height(b) &&
         memcmp(sf_image_pixels(a), sf_image_pixels(b), sf_image_stride(a) * sf_image_height(a)) == 0;
}

static void test_defaults(void) {
  sf_pipeline *pipe = load(lcm_dir, NAN);
  if (pipe == NULL) return;
  int total_default = 0, total_explicit = 0, total_other = 0;
  sf_image *dflt = generate(pipe, -1, NAN, &total_default);
  sf_image *explicit_ = generate(pipe, 4, 8.0, &total_explicit);
  sf_image *other = generate(pipe, 4, 2.5, &total_other);
  CHECK_EQ_INT(total_default, 4);
  CHECK_EQ_INT(total_explicit, 4);
  CHECK_MSG(same_image(dflt, explicit_), "unset steps/guidance must equal 4 steps at guidance 8");
  CHECK_MSG(dflt && other && !same_image(dflt, other), "the guidance scale must change an LCM generation");
  const char *text = dflt ? sf_image_parameters(dflt) : "";
  CHECK_MSG(strstr(text, "Steps: 4") && strstr(text, "CFG scale: 8") && strstr(text, "Sampler: LCM"),
            "parameters: %s", text);
  /* No unconditional batch: the run's workspace at guidance 7.5 is that of guidance 1. */
  sf_params *a = NULL, *b = NULL;
  sf_params_create(&a);
  sf_params_create(&b);
  sf_params_set_int(a, SF_PARAM_WIDTH, 64);
  sf_params_set_int(b, SF_PARAM_WIDTH, 64);
  sf_params_set_int(a, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(b, SF_PARAM_HEIGHT, 64);
  sf_params_set_float(a, SF_PARAM_GUIDANCE_SCALE, 7.5);
  sf_params_set_float(b, SF_PARAM_GUIDANCE_SCALE, 1.0);
  int64_t wa = -1, wb = -2;
  CHECK(sf_pipeline_estimate_memory(pipe, a, SF_MEMORY_WORKSPACE_RUN, &wa) == SF_OK);
  CHECK(sf_pipeline_estimate_memory(pipe, b, SF_MEMORY_WORKSPACE_RUN, &wb) == SF_OK);
  CHECK_MSG(wa == wb && wa > 0, "workspace %lld at guidance 7.5, %lld at 1", (long long)wa, (long long)wb);
  sf_params_destroy(a);
  sf_params_destroy(b);
  sf_image_destroy(dflt);
  sf_image_destroy(explicit_);
  sf_image_destroy(other);
  sf_pipeline_destroy(pipe);
}

/* A StableDiffusionPipeline folder keeps the library's defaults (8 steps). */
static void test_standard_defaults(void) {
  sf_pipeline *pipe = load(sd_dir, NAN);
  if (pipe == NULL) return;
  int total = 0;
  sf_image *img = generate(pipe, -1, NAN, &total);
  CHECK_EQ_INT(total, 8);
  const char *text = img ? sf_image_parameters(img) : "";
  CHECK_MSG(strstr(text, "CFG scale: 7.5") != NULL, "parameters: %s", text);
  sf_image_destroy(img);
  sf_pipeline_destroy(pipe);
}

/* sf_unet_predict_v2 on the LCM UNet: the load option's guidance reaches it (default 8). */
static void test_unet_guidance(void) {
  enum { B = 2, C = 4, H = 8, W = 8, T = 77 };
  sf_pipeline *p_default = load(lcm_dir, NAN), *p8 = load(lcm_dir, 8.0), *p25 = load(lcm_dir, 2.5);
  int64_t hidden = 0;
  if (p_default == NULL || p8 == NULL || p25 == NULL ||
      sf_pipeline_get_int(p_default, SF_INFO_TEXT_HIDDEN, &hidden) != SF_OK || hidden <= 0) {
    CHECK_MSG(0, "LCM pipelines did not load");
  } else {
    size_t n = (size_t)B * C * H * W, nt = (size_t)B * T * (size_t)hidden;
    float *x = malloc(n * sizeof *x), *text = malloc(nt * sizeof *text);
    float *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2), *o3 = malloc(n * sizeof *o3);
    float t[B] = {999.0f, 259.0f};
    if (x && text && o1 && o2 && o3) {
      for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.37 * (double)i);
      for (size_t i = 0; i < nt; i++) text[i] = (float)cos(0.11 * (double)i);
      CHECK(sf_unet_predict_v2(p_default, x, n, B, H, W, t, B, text, nt, T, o1, n) == SF_OK);
      CHECK(sf_unet_predict_v2(p8, x, n, B, H, W, t, B, text, nt, T, o2, n) == SF_OK);
      CHECK(sf_unet_predict_v2(p25, x, n, B, H, W, t, B, text, nt, T, o3, n) == SF_OK);
      CHECK_MSG(memcmp(o1, o2, n * sizeof *o1) == 0, "default SF_PARAM_UNET_GUIDANCE must be 8");
      double diff = 0;
      int finite = 1;
      for (size_t i = 0; i < n; i++) {
        finite &= isfinite(o1[i]) && isfinite(o3[i]);
        diff = fmax(diff, fabs((double)o1[i] - (double)o3[i]));
      }
      CHECK_MSG(finite && diff > 1e-3, "guidance 2.5 vs 8: max difference %g (finite %d)", diff, finite);
    } else {
      CHECK_MSG(0, "out of memory");
    }
    free(x);
    free(text);
    free(o1);
    free(o2);
    free(o3);
  }
  sf_pipeline_destroy(p_default);
  sf_pipeline_destroy(p8);
  sf_pipeline_destroy(p25);
  /* A guidance that is not a finite float is refused at load, naming the option. */
  sf_params *o = NULL;
  sf_pipeline *p = NULL;
  sf_params_create(&o);
  sf_params_set_float(o, SF_PARAM_UNET_GUIDANCE, NAN);
  sf_status s = sf_pipeline_load(ctx, lcm_dir, o, &p);
  CHECK_EQ_INT(s, SF_ERR_INVALID_ARGUMENT);
  CHECK_MSG(p == NULL && strstr(sf_context_last_error(ctx), "SF_PARAM_UNET_GUIDANCE"), "%s",
            sf_context_last_error(ctx));
  sf_params_destroy(o);
  sf_pipeline_destroy(p);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  snprintf(lcm_dir, sizeof lcm_dir, "%s/models/tiny-lcm", fx);
  snprintf(sd_dir, sizeof sd_dir, "%s/models/tiny-sd-mini", fx);
  char probe[4400];
  snprintf(probe, sizeof probe, "%s/model_index.json", lcm_dir);
  FILE *f = fopen(probe, "rb");
  if (f == NULL) {
    fprintf(stderr, "SKIPPED: %s not found\n", probe);
    return TEST_SKIP_EXIT_CODE;
  }
  fclose(f);
  if (sf_context_create(&ctx) != SF_OK) return 1;
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  test_defaults();
  test_standard_defaults();
  test_unet_guidance();
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
