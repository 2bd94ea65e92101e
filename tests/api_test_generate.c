/* Generation through the public API on the tiny-sd fixture: argument validation,
 * reproducibility, the step-wise API, progress callbacks, cancellation from another thread,
 * images and PNG files. */
#include <pthread.h>
#include <snapfusion.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static sf_context *ctx;
static sf_pipeline *pipe_;

static sf_params *base_params(void) {
  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PROMPT, "a photo of an astronaut riding a horse on mars");
  sf_params_set_string(p, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(p, SF_PARAM_WIDTH, 64);
  sf_params_set_int(p, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(p, SF_PARAM_STEPS, 8);
  sf_params_set_int(p, SF_PARAM_SEED, 42);
  return p;
}

static sf_image *generate(sf_params *p) {
  sf_image *img = NULL;
  sf_status s = sf_generate(pipe_, p, NULL, NULL, &img);
  CHECK_MSG(s == SF_OK, "%s", sf_context_last_error(ctx));
  return img;
}

static int same_image(const sf_image *a, const sf_image *b) {
  return a && b && sf_image_width(a) == sf_image_width(b) && sf_image_height(a) == sf_image_height(b) &&
         memcmp(sf_image_pixels(a), sf_image_pixels(b), sf_image_stride(a) * sf_image_height(a)) == 0;
}

static void test_invalid_params(void) {
  struct {
    sf_param key;
    int is_float;
    double value;
    sf_status want;
    const char *word;
  } cases[] = {
      {SF_PARAM_WIDTH, 0, 60, SF_ERR_INVALID_ARGUMENT, "multiples of 16"},
      /* a multiple of 8 that the UNet's down-sampling cannot take: refused up front */
      {SF_PARAM_WIDTH, 0, 72, SF_ERR_INVALID_ARGUMENT, "multiples of 16"},
      {SF_PARAM_HEIGHT, 0, -8, SF_ERR_INVALID_ARGUMENT, "height -8"},
      {SF_PARAM_GUIDANCE_SCALE, 1, 1e300, SF_ERR_INVALID_ARGUMENT, "guidance"},
      {SF_PARAM_BATCH_COUNT, 0, 2, SF_ERR_INVALID_ARGUMENT, "sf_generate_batch"},
      {SF_PARAM_STEPS, 0, 0, SF_ERR_INVALID_ARGUMENT, "steps"},
      {SF_PARAM_GUIDANCE_SCALE, 1, NAN, SF_ERR_INVALID_ARGUMENT, "guidance"},
      {SF_PARAM_STRENGTH, 1, 1.5, SF_ERR_INVALID_ARGUMENT, "strength"},
      {SF_PARAM_STRENGTH, 1, -0.1, SF_ERR_INVALID_ARGUMENT, "strength"},
      {SF_PARAM_SAMPLER, 0, 99, SF_ERR_INVALID_ARGUMENT, "sampler"},
      {SF_PARAM_ETA, 1, 0.5, SF_ERR_UNSUPPORTED, "eta"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sf_params *p = base_params();
    if (cases[i].is_float) sf_params_set_float(p, cases[i].key, cases[i].value);
    else sf_params_set_int(p, cases[i].key, (int64_t)cases[i].value);
    sf_image *img = (sf_image *)1;
    sf_status s = sf_generate(pipe_, p, NULL, NULL, &img);
    CHECK_MSG(s == cases[i].want, "case %zu: got %s", i, sf_status_string(s));
    CHECK(img == NULL);
    CHECK_MSG(strstr(sf_context_last_error(ctx), cases[i].word) != NULL, "case %zu: message '%s'", i,
              sf_context_last_error(ctx));
    sf_params_destroy(p);
  }
  /* no prompt at all */
  sf_params *p = base_params();
  sf_params_unset(p, SF_PARAM_PROMPT);
  sf_job *job = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_ERR_INVALID_ARGUMENT);
  CHECK(job == NULL);
  CHECK_EQ_INT(sf_job_start(NULL, p, &job), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_job_start(pipe_, NULL, &job), SF_ERR_INVALID_ARGUMENT);
  /* latents of the wrong size */
  sf_params_set_string(p, SF_PARAM_PROMPT, "x");
  float lat[10] = {0};
  sf_params_set_floats(p, SF_PARAM_LATENTS, lat, 10);
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_ERR_INVALID_ARGUMENT);
  sf_params_destroy(p);
  sf_job_destroy(NULL);
  sf_image_destroy(NULL);
}

static void test_reproducible_and_stepwise(void) {
  sf_params *p = base_params();
  sf_image *a = generate(p);
  sf_image *b = generate(p);
  CHECK(same_image(a, b));
  CHECK(a && sf_image_width(a) == 64 && sf_image_height(a) == 64 && sf_image_stride(a) == 192);
  CHECK(a && strstr(sf_image_parameters(a), "Steps: 8") && strstr(sf_image_parameters(a), "Seed: 42") &&
        strstr(sf_image_parameters(a), "Negative prompt: blurry"));
  /* The step-wise API gives the one-shot result. */
  sf_job *job = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_OK);
  CHECK_EQ_INT(sf_job_steps_total(job), 8);
  CHECK_EQ_INT(sf_job_latent_count(job), 4 * 8 * 8);
  float lat[4 * 8 * 8];
  while (job && sf_job_steps_done(job) < sf_job_steps_total(job)) {
    CHECK_EQ_INT(sf_job_step(job), SF_OK);
    CHECK_EQ_INT(sf_job_latents(job, lat, 256), SF_OK);
    sf_image *prev = NULL;
    CHECK_EQ_INT(sf_job_preview(job, &prev), SF_OK);
    CHECK(prev && sf_image_width(prev) == 8);
    sf_image_destroy(prev);
  }
  CHECK_EQ_INT(sf_job_step(job), SF_ERR_BAD_STATE);
  CHECK_EQ_INT(sf_job_latents(job, lat, 10), SF_ERR_INVALID_ARGUMENT);
  sf_image *c = NULL;
  CHECK_EQ_INT(sf_job_finish(job, &c), SF_OK);
  CHECK(same_image(a, c));
  sf_job_destroy(job);
  /* The activation memory counts every network's arena: decoding a larger latent grows it. */
  int64_t arena = 0, arena_big = 0;
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_ARENA_BYTES, &arena), SF_OK);
  CHECK(arena > 0);
  static float big_latents[4 * 32 * 32], big_image[3 * 256 * 256];
  CHECK_EQ_INT(sf_decode_latents_v2(pipe_, SF_NET_VAE_DECODER, big_latents, 4 * 32 * 32, 1, 32, 32, 0, big_image,
                                    3 * 256 * 256),
               SF_OK);
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_ARENA_BYTES, &arena_big), SF_OK);
  CHECK_MSG(arena_big > arena, "arena %lld after a 256x256 decode, %lld before", (long long)arena_big,
            (long long)arena);
  /* Another seed gives another image. */
  sf_params_set_int(p, SF_PARAM_SEED, 43);
  sf_image *d = generate(p);
  CHECK(d && !same_image(a, d));
  /* The caller-buffer copy. */
  size_t need = 0;
  CHECK_EQ_INT(sf_image_copy(a, NULL, 0, 0, &need), SF_OK);
  CHECK_EQ_INT(need, 64 * 64 * 3);
  uint8_t *buf = malloc(256 * 64);
  CHECK_EQ_INT(sf_image_copy(a, buf, 256 * 64, 256, NULL), SF_OK);
  CHECK(buf && memcmp(buf + 256, sf_image_pixels(a) + 192, 192) == 0);
  CHECK_EQ_INT(sf_image_copy(a, buf, 100, 256, NULL), SF_ERR_INVALID_ARGUMENT);
  free(buf);
  sf_image_destroy(a);
  sf_image_destroy(b);
  sf_image_destroy(c);
  sf_image_destroy(d);
  sf_params_destroy(p);
}

static int stop_after_three(void *user, int step, int total) {
  int *calls = user;
  (*calls)++;
  CHECK(total == 8 && step == *calls);
  return step >= 3;
}

static void test_progress_stop(void) {
  sf_params *p = base_params();
  int calls = 0;
  sf_image *img = NULL;
  CHECK_EQ_INT(sf_generate(pipe_, p, stop_after_three, &calls, &img), SF_ERR_CANCELLED);
  CHECK_EQ_INT(calls, 3);
  CHECK(img == NULL);
  /* The pipeline stays usable. */
  sf_image *again = generate(p);
  CHECK(again != NULL);
  sf_image_destroy(again);
  sf_params_destroy(p);
}

typedef struct {
  sf_job *job;
  long delay_us;
} cancel_args;

static void *cancel_later(void *arg) {
  cancel_args *a = arg;
  struct timespec ts = {0, a->delay_us * 1000};
  nanosleep(&ts, NULL);
  sf_job_cancel(a->job);
  return NULL;
}

static void test_cancel_from_thread(void) {
  sf_params *p = base_params();
  sf_image *ref = generate(p);
  unsigned seed = 12345;
  int cancelled = 0, finished = 0;
  for (int round = 0; round < 40; round++) {
    sf_job *job = NULL;
    if (sf_job_start(pipe_, p, &job) != SF_OK) {
      CHECK(0);
      break;
    }
    seed = seed * 1103515245u + 12345u;
    cancel_args a = {job, (long)(seed % 40000)};
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, &a);
    sf_image *img = NULL;
    sf_status s = sf_job_finish(job, &img);
    pthread_join(th, NULL);
    CHECK(s == SF_OK || s == SF_ERR_CANCELLED);
    if (s == SF_OK) {
      finished++;
      CHECK(same_image(ref, img));
    } else {
      cancelled++;
      CHECK(img == NULL);
      CHECK_EQ_INT(sf_job_step(job), SF_ERR_BAD_STATE);
    }
    sf_image_destroy(img);
    sf_job_destroy(job);
  }
  printf("cancel rounds: %d cancelled, %d finished before the cancel\n", cancelled, finished);
  CHECK(cancelled > 0);
  /* After all that, the next generation still matches. */
  sf_image *after = generate(p);
  CHECK(same_image(ref, after));
  sf_image_destroy(after);
  sf_image_destroy(ref);
  sf_params_destroy(p);
}

static void test_png_roundtrip(void) {
  sf_params *p = base_params();
  sf_image *img = generate(p);
  char path[] = "/tmp/sf_png_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK_EQ_INT(sf_image_write_png(img, path), SF_OK);
  sf_image *back = NULL;
  CHECK_EQ_INT(sf_image_read_png(path, &back), SF_OK);
  CHECK(same_image(img, back));
  CHECK(back && strcmp(sf_image_parameters(back), sf_image_parameters(img)) == 0);
  /* The parameters chunk is in the file as other SD tools read it. */
  FILE *f = fopen(path, "rb");
  char buf[65536];
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f) fclose(f);
  int found = 0;
  for (size_t i = 0; i + 15 < n; i++)
    if (memcmp(buf + i, "tEXtparameters", 15) == 0) found = 1;
  CHECK(found);
  remove(path);
  sf_image_destroy(back);
  back = NULL;
  CHECK_EQ_INT(sf_image_read_png("/nonexistent.png", &back), SF_ERR_IO);
  CHECK(back == NULL);
  /* A directory is an I/O problem, and a file that is not a PNG a bad argument: neither is a
   * "bad model file". */
  CHECK_EQ_INT(sf_image_read_png("/tmp", &back), SF_ERR_IO);
  CHECK(back == NULL && strstr(sf_last_error(), "not a regular file") != NULL);
  char other[] = "/tmp/sf_not_png_XXXXXX";
  int ofd = mkstemp(other);
  CHECK(ofd >= 0);
  if (ofd >= 0) {
    CHECK(write(ofd, "hello, not a png", 16) == 16);
    close(ofd);
    CHECK_EQ_INT(sf_image_read_png(other, &back), SF_ERR_INVALID_ARGUMENT);
    CHECK(back == NULL && strstr(sf_last_error(), "is not a PNG file") != NULL);
    remove(other);
  }
  CHECK_EQ_INT(sf_image_write_png(img, "/nonexistent-dir/x.png"), SF_ERR_IO);
  sf_image_destroy(img);
  sf_params_destroy(p);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  if (sf_context_create(&ctx) != SF_OK || sf_context_set_int(ctx, SF_PARAM_THREADS, 2) != SF_OK ||
      sf_pipeline_load(ctx, dir, NULL, &pipe_) != SF_OK) {
    fprintf(stderr, "cannot load %s: %s\n", dir, sf_last_error());
    return 1;
  }
  test_invalid_params();
  test_reproducible_and_stepwise();
  test_progress_stop();
  test_cancel_from_thread();
  test_png_roundtrip();
  sf_pipeline_destroy(pipe_);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
