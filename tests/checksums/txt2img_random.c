/* The random-weight txt2img of the checksum table (tests/checksums/README): tiny-sd's
 * architecture (the public fixtures' folder) with seeded random weights, a 64x64 image in
 * 3 DDIM steps with guidance, through the public API. Prints one line per output, in the
 * format of `snapfusion check --digest`: the SHA-256 of the raw float32 bytes of the prompt
 * embedding, the final latents and the float image before 8-bit rounding, and of the 8-bit
 * pixels. The same bits are promised on every CPU, so the lines must equal the table's.
 *   usage: txt2img_random FIXTURE_SET_DIR [THREADS]      (exit 77: the folder is missing) */
#include <snapfusion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"

static void line(const char *name, const void *data, size_t bytes) {
  sf_sha256 s;
  uint8_t sum[32];
  char hex[65];
  sf_sha256_init(&s);
  sf_sha256_update(&s, data, bytes);
  sf_sha256_final(&s, sum);
  sf_sha256_hex(sum, hex);
  printf("%-52s %-4s sha256=%s\n", name, "PASS", hex);
}

static int fail(const char *what, sf_status s) {
  fprintf(stderr, "txt2img_random: %s: %s: %s\n", what, sf_status_string(s), sf_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: txt2img_random FIXTURE_SET_DIR [THREADS]\n");
    return 2;
  }
  char dir[4096], probe[4200];
  snprintf(dir, sizeof dir, "%s/tiny-sd", argv[1]);
  snprintf(probe, sizeof probe, "%s/model_index.json", dir);
  FILE *f = fopen(probe, "rb");
  if (f == NULL) {
    printf("SKIPPED: %s not found\n", probe);
    return 77;
  }
  fclose(f);
  const int threads = argc > 2 ? atoi(argv[2]) : 2;

  sf_context *ctx = NULL;
  sf_status s = sf_context_create(&ctx);
  if (s != SF_OK) return fail("sf_context_create", s);
  if ((s = sf_context_set_int(ctx, SF_PARAM_THREADS, threads)) != SF_OK) return fail("threads", s);
  sf_params *load = NULL;
  sf_params_create(&load);
  sf_params_set_int(load, SF_PARAM_RANDOM_WEIGHTS, 1);
  sf_params_set_int(load, SF_PARAM_RANDOM_SEED, 20261203);
  sf_pipeline *pipe = NULL;
  s = sf_pipeline_load(ctx, dir, load, &pipe);
  sf_params_destroy(load);
  if (s != SF_OK) return fail("sf_pipeline_load", s);

  int rc = 0;
  const char *prompt = "a photo of an astronaut riding a horse on mars";
  int64_t hidden = 0;
  sf_pipeline_get_int(pipe, SF_INFO_TEXT_HIDDEN, &hidden);
  float *emb = calloc((size_t)(77 * hidden), sizeof *emb);
  if (emb == NULL) return 1;
  if ((s = sf_encode_prompt(pipe, prompt, 0, emb, (size_t)(77 * hidden))) != SF_OK) rc = fail("sf_encode_prompt", s);
  else line("txt2img_random/prompt_embedding", emb, (size_t)(77 * hidden) * sizeof *emb);
  free(emb);

  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PROMPT, prompt);
  sf_params_set_string(p, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(p, SF_PARAM_WIDTH, 64);
  sf_params_set_int(p, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(p, SF_PARAM_STEPS, 3);
  sf_params_set_int(p, SF_PARAM_SAMPLER, SF_SAMPLER_DDIM);
  sf_params_set_float(p, SF_PARAM_GUIDANCE_SCALE, 7.5);
  sf_params_set_int(p, SF_PARAM_SEED, 42);
  sf_job *job = NULL;
  sf_image *img = NULL;
  if (rc == 0 && (s = sf_job_start(pipe, p, &job)) != SF_OK) rc = fail("sf_job_start", s);
  while (rc == 0 && sf_job_steps_done(job) < sf_job_steps_total(job))
    if ((s = sf_job_step(job)) != SF_OK) rc = fail("sf_job_step", s);
  if (rc == 0) {
    const size_t n = sf_job_latent_count(job);
    float *lat = malloc(n * sizeof *lat);
    if (lat == NULL || (s = sf_job_latents(job, lat, n)) != SF_OK) rc = fail("sf_job_latents", s);
    else line("txt2img_random/latents", lat, n * sizeof *lat);
    free(lat);
  }
  if (rc == 0 && (s = sf_job_finish(job, &img)) != SF_OK) rc = fail("sf_job_finish", s);
  if (rc == 0) {
    const size_t n = sf_job_image_count(job);
    float *im = malloc(n * sizeof *im);
    if (im == NULL || (s = sf_job_image_f32(job, SF_LAYOUT_NCHW, im, n)) != SF_OK) rc = fail("sf_job_image_f32", s);
    else line("txt2img_random/image_f32", im, n * sizeof *im);
    free(im);
    line("txt2img_random/image_rgb8", sf_image_pixels(img),
         (size_t)sf_image_stride(img) * sf_image_height(img));
  }
  sf_image_destroy(img);
  sf_job_destroy(job);
  sf_params_destroy(p);
  sf_pipeline_destroy(pipe);
  sf_context_destroy(ctx);
  return rc;
}
