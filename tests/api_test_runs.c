/* Runs on one loaded pipeline (API 1.1): per-run cancel tokens (no sticky cancel), the sized
 * building blocks, several runs at once from different threads with the same results as
 * alone (on one pipeline, and on two contexts each with its own), thread-count changes between steps, batches, random seeds, float images and the
 * size checks. Public API only, on the tiny-sd fixture.
 *
 * SF_TEST_THREADS (default: the context's default) sets the context's worker threads; the
 * TSan job runs this test with 1, because pthreadpool's own synchronisation is invisible to
 * TSan (the library is not instrumented) and would be reported as races in our kernels. */
#include <math.h>
#include <pthread.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

static sf_context *ctx;
static sf_pipeline *pipe_;
static char tiny_dir[4200];

#define LAT (4 * 8 * 8)      /* tiny-sd latents at 64x64: 4 x 8 x 8 */
#define TEXT (77 * 32)       /* tiny-sd text embeddings: 77 x 32 */
#define IMG (3 * 64 * 64)

static sf_params *params_for(uint64_t seed, int steps) {
  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PROMPT, "a photo of an astronaut riding a horse on mars");
  sf_params_set_string(p, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(p, SF_PARAM_WIDTH, 64);
  sf_params_set_int(p, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(p, SF_PARAM_STEPS, steps);
  sf_params_set_int(p, SF_PARAM_SEED, (int64_t)seed);
  return p;
}

static int same_image(const sf_image *a, const sf_image *b) {
  return a && b && sf_image_width(a) == sf_image_width(b) && sf_image_height(a) == sf_image_height(b) &&
         memcmp(sf_image_pixels(a), sf_image_pixels(b), sf_image_stride(a) * sf_image_height(a)) == 0;
}

static sf_image *generate_seed(uint64_t seed, int steps) {
  sf_params *p = params_for(seed, steps);
  sf_image *img = NULL;
  sf_status s = sf_generate(pipe_, p, NULL, NULL, &img);
  CHECK_MSG(s == SF_OK, "generate seed %llu: %s", (unsigned long long)seed, sf_last_error());
  sf_params_destroy(p);
  return img;
}

/* Deterministic inputs for the building blocks. */
static float lat_in[2 * LAT], text_in[2 * TEXT], tsteps[2] = {999.0f, 500.0f};

static void fill_inputs(void) {
  uint32_t s = 7;
  for (size_t i = 0; i < 2 * LAT; i++) {
    s = s * 1664525u + 1013904223u;
    lat_in[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
  for (size_t i = 0; i < 2 * TEXT; i++) {
    s = s * 1664525u + 1013904223u;
    text_in[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
}

static sf_status unet_call(float *out) {
  return sf_unet_predict_v2(pipe_, lat_in, 2 * LAT, 2, 8, 8, tsteps, 2, text_in, 2 * TEXT, 77, out, 2 * LAT);
}

/* ---- cancel tokens -------------------------------------------------------------------------- */

static void test_cancel_is_per_run(void) {
  float ref[2 * LAT], out[2 * LAT], img[IMG], mean[LAT];
  CHECK_EQ_INT(unet_call(ref), SF_OK);
  /* A cancelled job ... */
  sf_params *p = params_for(1, 4);
  sf_job *job = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_OK);
  sf_job_cancel(job);
  CHECK_EQ_INT(sf_job_step(job), SF_ERR_CANCELLED);
  CHECK_EQ_INT(sf_job_step(job), SF_ERR_BAD_STATE);
  sf_job_destroy(job);
  /* ... leaves nothing behind: every building block works afterwards (was: SF_ERR_CANCELLED
   * until the next job started). */
  CHECK_EQ_INT(unet_call(out), SF_OK);
  CHECK(memcmp(ref, out, sizeof ref) == 0);
  CHECK_EQ_INT(sf_decode_latents_v2(pipe_, SF_NET_VAE_DECODER, lat_in, LAT, 1, 8, 8, 0, img, IMG), SF_OK);
  CHECK_EQ_INT(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, IMG, 1, 64, 64, 0, mean, LAT, NULL, 0), SF_OK);
  /* sf_pipeline_cancel reaches the runs in flight only: with none, it changes nothing later. */
  sf_pipeline_cancel(pipe_);
  CHECK_EQ_INT(unet_call(out), SF_OK);
  job = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_OK);
  CHECK_EQ_INT(sf_job_step(job), SF_OK);
  /* A job alive is a run in flight: sf_pipeline_cancel stops it at its next step, and only it. */
  int64_t active = -1;
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_ACTIVE_RUNS, &active), SF_OK);
  CHECK_EQ_INT(active, 1);
  sf_pipeline_cancel(pipe_);
  CHECK_EQ_INT(sf_job_step(job), SF_ERR_CANCELLED);
  sf_job *job2 = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job2), SF_OK);
  sf_image *a = NULL;
  CHECK_EQ_INT(sf_job_finish(job2, &a), SF_OK);
  sf_image *b = generate_seed(1, 4);
  CHECK(same_image(a, b));
  sf_image_destroy(a);
  sf_image_destroy(b);
  sf_job_destroy(job2);
  sf_job_destroy(job);
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_ACTIVE_RUNS, &active), SF_OK);
  CHECK_EQ_INT(active, 0);
  sf_params_destroy(p);
}

/* A cancel from another thread while sf_generate runs: the progress callback of step 1 hands
 * over to the canceller and waits until it has cancelled, so the cancel lands inside the call. */
typedef struct handoff {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage; /* 1: generate is inside step 1's callback; 2: cancelled */
} handoff;

static int wait_for_cancel(void *user, int step, int total) {
  (void)total;
  handoff *h = user;
  if (step != 1) return 0;
  pthread_mutex_lock(&h->mu);
  h->stage = 1;
  pthread_cond_broadcast(&h->cv);
  while (h->stage != 2) pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  return 0;
}

static void *canceller(void *arg) {
  handoff *h = arg;
  pthread_mutex_lock(&h->mu);
  while (h->stage != 1) pthread_cond_wait(&h->cv, &h->mu);
  sf_pipeline_cancel(pipe_);
  h->stage = 2;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

static void test_cancel_from_another_thread(void) {
  handoff h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t t;
  pthread_create(&t, NULL, canceller, &h);
  sf_params *p = params_for(3, 6);
  sf_image *img = NULL;
  sf_status s = sf_generate(pipe_, p, wait_for_cancel, &h, &img);
  pthread_join(t, NULL);
  CHECK_EQ_INT(s, SF_ERR_CANCELLED);
  CHECK(img == NULL);
  /* and the next call is not affected */
  sf_image *again = generate_seed(3, 2);
  CHECK(again != NULL);
  sf_image_destroy(again);
  sf_params_destroy(p);
}

/* ---- concurrency ------------------------------------------------------------------------------ */

typedef struct worker {
  int kind;          /* 0: sf_generate, 1: building blocks */
  uint64_t seed;
  sf_image *img;     /* kind 0 */
  float out[2 * LAT]; /* kind 1 */
  float emb[TEXT];
  sf_status status;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int round = 0; round < 3 && w->status == SF_OK; round++) {
    if (w->kind == 0) {
      sf_params *p = params_for(w->seed, 3);
      sf_image *img = NULL;
      w->status = sf_generate(pipe_, p, NULL, NULL, &img);
      sf_params_destroy(p);
      if (w->img == NULL) w->img = img;
      else {
        if (!same_image(w->img, img)) w->status = SF_ERR_INTERNAL; /* the same call twice, other results */
        sf_image_destroy(img);
      }
    } else {
      w->status = sf_encode_prompt(pipe_, "a red fox in the snow", 0, w->emb, TEXT);
      if (w->status == SF_OK) w->status = unet_call(w->out);
    }
  }
  return NULL;
}

static void test_concurrent_runs(void) {
  /* Alone first. */
  sf_image *alone1 = generate_seed(11, 3), *alone2 = generate_seed(12, 3);
  float ref_out[2 * LAT], ref_emb[TEXT];
  CHECK_EQ_INT(sf_encode_prompt(pipe_, "a red fox in the snow", 0, ref_emb, TEXT), SF_OK);
  CHECK_EQ_INT(unet_call(ref_out), SF_OK);
  /* Then two generations and a building-block user at once on the same pipeline. */
  worker w[3] = {{.kind = 0, .seed = 11}, {.kind = 0, .seed = 12}, {.kind = 1}};
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, work, &w[i]);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 3; i++) CHECK_MSG(w[i].status == SF_OK, "worker %d: %s", i, sf_status_string(w[i].status));
  CHECK_MSG(same_image(w[0].img, alone1), "concurrent generation 1 differs from the one made alone");
  CHECK_MSG(same_image(w[1].img, alone2), "concurrent generation 2 differs from the one made alone");
  CHECK(memcmp(w[2].out, ref_out, sizeof ref_out) == 0);
  CHECK(memcmp(w[2].emb, ref_emb, sizeof ref_emb) == 0);
  for (int i = 0; i < 2; i++) sf_image_destroy(w[i].img);
  sf_image_destroy(alone1);
  sf_image_destroy(alone2);
  /* Two jobs interleaved on one thread are independent too. */
  sf_params *p1 = params_for(11, 3), *p2 = params_for(12, 3);
  sf_job *j1 = NULL, *j2 = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p1, &j1), SF_OK);
  CHECK_EQ_INT(sf_job_start(pipe_, p2, &j2), SF_OK);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(sf_job_step(j2), SF_OK);
    CHECK_EQ_INT(sf_job_step(j1), SF_OK);
  }
  sf_image *i1 = NULL, *i2 = NULL;
  CHECK_EQ_INT(sf_job_finish(j1, &i1), SF_OK);
  CHECK_EQ_INT(sf_job_finish(j2, &i2), SF_OK);
  sf_image *r1 = generate_seed(11, 3), *r2 = generate_seed(12, 3);
  CHECK(same_image(i1, r1) && same_image(i2, r2));
  sf_image_destroy(i1);
  sf_image_destroy(i2);
  sf_image_destroy(r1);
  sf_image_destroy(r2);
  sf_job_destroy(j1);
  sf_job_destroy(j2);
  sf_params_destroy(p1);
  sf_params_destroy(p2);
}

/* Two contexts, each with its own pipeline of the same model, generating on two threads at
 * once (and a low-memory pipeline on the second): each image equals the one made alone. */
typedef struct ctx_worker {
  const char *threads;
  uint64_t seed;
  int low_memory;
  sf_image *img;
  sf_status status;
} ctx_worker;

static void *ctx_work(void *arg) {
  ctx_worker *w = arg;
  sf_context *c = NULL;
  sf_pipeline *p = NULL;
  sf_params *load = NULL, *gen = params_for(w->seed, 3);
  w->status = sf_context_create(&c);
  if (w->status == SF_OK && w->threads) w->status = sf_context_set_int(c, SF_PARAM_THREADS, atoi(w->threads));
  if (w->status == SF_OK) w->status = sf_params_create(&load);
  if (w->status == SF_OK && w->low_memory) w->status = sf_params_set_int(load, SF_PARAM_LOW_MEMORY, 1);
  if (w->status == SF_OK) w->status = sf_pipeline_load(c, tiny_dir, load, &p);
  for (int round = 0; w->status == SF_OK && round < 2; round++) { /* the second reuses the run state */
    sf_image_destroy(w->img);
    w->img = NULL;
    w->status = sf_generate(p, gen, NULL, NULL, &w->img);
  }
  sf_params_destroy(gen);
  sf_params_destroy(load);
  sf_pipeline_destroy(p);
  sf_context_destroy(c);
  return NULL;
}

static void test_two_contexts(void) {
  sf_image *alone1 = generate_seed(21, 3), *alone2 = generate_seed(22, 3);
  const char *threads = getenv("SF_TEST_THREADS");
  ctx_worker w[2] = {{.threads = threads, .seed = 21}, {.threads = threads, .seed = 22, .low_memory = 1}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, ctx_work, &w[i]);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; i++) CHECK_MSG(w[i].status == SF_OK, "context %d: %s", i, sf_status_string(w[i].status));
  CHECK_MSG(same_image(w[0].img, alone1), "the first context's image differs from the one made alone");
  CHECK_MSG(same_image(w[1].img, alone2), "the second context's image differs from the one made alone");
  for (int i = 0; i < 2; i++) sf_image_destroy(w[i].img);
  sf_image_destroy(alone1);
  sf_image_destroy(alone2);
}

/* The thread count may change between steps (no network call runs then): the job replans, and
 * since results do not depend on the thread count, the image is the same. */
static int change_threads(void *user, int step, int total) {
  (void)user;
  (void)total;
  sf_status s = sf_context_set_int(ctx, SF_PARAM_THREADS, step % 2 ? 1 : 2);
  CHECK_MSG(s == SF_OK, "threads between steps: %s", sf_last_error());
  return 0;
}

static void test_threads_between_steps(void) {
  int64_t before = 0;
  sf_context_get_int(ctx, SF_PARAM_THREADS, &before);
  sf_image *ref = generate_seed(21, 4);
  sf_params *p = params_for(21, 4);
  sf_image *img = NULL;
  CHECK_EQ_INT(sf_generate(pipe_, p, change_threads, NULL, &img), SF_OK);
  CHECK(same_image(ref, img));
  sf_image_destroy(img);
  sf_image_destroy(ref);
  sf_params_destroy(p);
  CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_THREADS, before), SF_OK);
}

/* ---- sizes ---------------------------------------------------------------------------------------- */

static void expect_size_error(sf_status s, const char *needle) {
  CHECK_EQ_INT(s, SF_ERR_INVALID_ARGUMENT);
  CHECK_MSG(strstr(sf_last_error(), needle) != NULL, "message '%s' lacks '%s'", sf_last_error(), needle);
}

static void test_sized_buffers(void) {
  float out[2 * LAT], img[2 * IMG], mean[2 * LAT], logvar[2 * LAT];
  expect_size_error(sf_unet_predict_v2(pipe_, lat_in, 2 * LAT - 1, 2, 8, 8, tsteps, 2, text_in, 2 * TEXT, 77, out,
                                       2 * LAT),
                    "expected 512");
  expect_size_error(
      sf_unet_predict_v2(pipe_, lat_in, 2 * LAT, 2, 8, 8, tsteps, 1, text_in, 2 * TEXT, 77, out, 2 * LAT),
      "timesteps_count 1, expected 2");
  expect_size_error(sf_unet_predict_v2(pipe_, lat_in, 2 * LAT, 2, 8, 8, tsteps, 2, text_in, TEXT, 77, out, 2 * LAT),
                    "expected 4928");
  expect_size_error(
      sf_unet_predict_v2(pipe_, lat_in, 2 * LAT, 2, 8, 8, tsteps, 2, text_in, 2 * TEXT, 77, out, 2 * LAT - 1),
      "512 needed");
  expect_size_error(sf_decode_latents_v2(pipe_, SF_NET_VAE_DECODER, lat_in, LAT, 1, 8, 8, 0, img, IMG - 1),
                    "12288 needed");
  expect_size_error(sf_decode_latents_v2(pipe_, SF_NET_TAESD_DECODER, lat_in, LAT + 1, 1, 8, 8, 0, img, IMG),
                    "expected 256");
  CHECK_EQ_INT(sf_decode_latents_v2(pipe_, SF_NET_VAE_DECODER, lat_in, 2 * LAT, 2, 8, 8, 0, img, 2 * IMG), SF_OK);
  expect_size_error(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, IMG, 1, 64, 64, 0, mean, LAT - 1, NULL, 0),
                    "256 needed");
  expect_size_error(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, IMG, 1, 64, 64, 0, mean, LAT, logvar, 3),
                    "logvar_capacity 3");
  expect_size_error(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, IMG, 1, 64, 64, 0, mean, LAT, NULL, 5),
                    "logvar is NULL");
  expect_size_error(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, IMG - 3, 1, 64, 64, 0, mean, LAT, NULL, 0),
                    "expected 12288");
  expect_size_error(sf_encode_image_v2(pipe_, SF_NET_VAE_ENCODER, img, 3 * 60 * 64, 1, 60, 64, 0, mean, LAT, NULL, 0),
                    "multiples of the encoder's factor 8");
  /* Absurd sizes are refused before any planning (was: a 100-TB workspace request, which
   * ASan aborts on), through v1 and v2 alike. */
  static float tiny[16];
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  expect_size_error(sf_encode_image(pipe_, SF_NET_VAE_ENCODER, tiny, 1, (size_t)1 << 40, 64, 0, tiny, NULL),
                    "sides must be 1..16384");
  expect_size_error(sf_decode_latents(pipe_, SF_NET_VAE_DECODER, tiny, 1, (size_t)1 << 40, 8, 0, tiny),
                    "sides must be 1..16384");
  expect_size_error(sf_encode_image(pipe_, SF_NET_TAESD_ENCODER, tiny, 4096, 8192, 8192, 0, tiny, NULL),
                    "the batch at most");
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
  /* The v2 call and the deprecated v1 call compute the same. */
  float out1[2 * LAT];
  CHECK_EQ_INT(unet_call(out), SF_OK);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  CHECK_EQ_INT(sf_unet_predict(pipe_, lat_in, 2, 8, 8, tsteps, text_in, 77, out1), SF_OK);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
  CHECK(memcmp(out, out1, sizeof out) == 0);
  /* Image sides must be multiples of SF_INFO_SIZE_MULTIPLE (tiny-sd: 8 x 2^1). */
  int64_t multiple = 0;
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_SIZE_MULTIPLE, &multiple), SF_OK);
  CHECK_EQ_INT(multiple, 16);
  int64_t factor = 0, hidden = 0;
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_SCALE_FACTOR, &factor), SF_OK);
  CHECK_EQ_INT(factor, 8);
  CHECK_EQ_INT(sf_pipeline_get_int(pipe_, SF_INFO_TEXT_HIDDEN, &hidden), SF_OK);
  CHECK_EQ_INT(hidden, 32);
}

/* ---- batches, seeds, float images, tokens ---------------------------------------------------- */

static void test_batch_and_seeds(void) {
  sf_params *p = params_for(40, 2);
  sf_params_set_int(p, SF_PARAM_BATCH_COUNT, 3);
  sf_image *imgs[4] = {NULL, NULL, NULL, (sf_image *)1};
  size_t count = 99;
  CHECK_EQ_INT(sf_generate_batch(pipe_, p, NULL, NULL, imgs, 2, &count), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(count, 0);
  CHECK_EQ_INT(sf_generate_batch(pipe_, p, NULL, NULL, imgs, 4, &count), SF_OK);
  CHECK_EQ_INT(count, 3);
  CHECK(imgs[3] == NULL);
  for (int i = 0; i < 3; i++) {
    sf_image *one = generate_seed(40 + (uint64_t)i, 2);
    CHECK_MSG(same_image(imgs[i], one), "batch image %d differs from seed %d alone", i, 40 + i);
    char want[32];
    snprintf(want, sizeof want, "Seed: %d,", 40 + i);
    CHECK(strstr(sf_image_parameters(imgs[i]), want) != NULL);
    sf_image_destroy(one);
    sf_image_destroy(imgs[i]);
  }
  /* A job refuses batches (it makes one image). */
  sf_job *job = NULL;
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_ERR_INVALID_ARGUMENT);
  sf_params_destroy(p);

  /* SF_SEED_RANDOM draws a seed, says which, and that seed reproduces the image. */
  p = params_for(0, 2);
  sf_params_set_int(p, SF_PARAM_SEED, SF_SEED_RANDOM);
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_OK);
  uint64_t seed = sf_job_seed(job);
  CHECK(seed <= (uint64_t)INT64_MAX);
  sf_image *img = NULL;
  CHECK_EQ_INT(sf_job_finish(job, &img), SF_OK);
  char want[48];
  snprintf(want, sizeof want, "Seed: %llu,", (unsigned long long)seed);
  CHECK_MSG(strstr(sf_image_parameters(img), want) != NULL, "parameters '%s' lack '%s'", sf_image_parameters(img),
            want);
  sf_image *again = generate_seed(seed, 2);
  CHECK(same_image(img, again));
  /* The float image before rounding: [0, 1], and it rounds to the RGB8 image. */
  size_t n = sf_job_image_count(job);
  CHECK_EQ_INT(n, IMG);
  float *nchw = malloc(n * sizeof *nchw), *nhwc = malloc(n * sizeof *nhwc);
  CHECK_EQ_INT(sf_job_image_f32(job, SF_LAYOUT_NCHW, nchw, n), SF_OK);
  CHECK_EQ_INT(sf_job_image_f32(job, SF_LAYOUT_NHWC, nhwc, n), SF_OK);
  CHECK_EQ_INT(sf_job_image_f32(job, SF_LAYOUT_NHWC, nhwc, n - 1), SF_ERR_INVALID_ARGUMENT);
  size_t bad = 0;
  const uint8_t *px = sf_image_pixels(img);
  for (size_t i = 0; i < 64 * 64; i++)
    for (size_t c = 0; c < 3; c++) {
      float v = nhwc[i * 3 + c];
      bad += !(v >= 0.0f && v <= 1.0f) || v != nchw[c * 64 * 64 + i] || (uint8_t)nearbyintf(v * 255.0f) != px[i * 3 + c];
    }
  CHECK_EQ_INT(bad, 0);
  free(nchw);
  free(nhwc);
  sf_image_destroy(img);
  sf_image_destroy(again);
  sf_job_destroy(job);
  /* Before finish there is no float image. */
  CHECK_EQ_INT(sf_job_start(pipe_, p, &job), SF_OK);
  float one;
  CHECK_EQ_INT(sf_job_image_f32(job, SF_LAYOUT_NCHW, &one, 1), SF_ERR_BAD_STATE);
  sf_job_destroy(job);
  sf_params_destroy(p);

  /* Token texts. */
  char tok[64];
  size_t needed = 0;
  CHECK_EQ_INT(sf_token_text(pipe_, 2368, tok, sizeof tok, &needed), SF_OK);
  CHECK(strcmp(tok, "cat</w>") == 0 && needed == 8);
  CHECK_EQ_INT(sf_token_text(pipe_, 49406, NULL, 0, &needed), SF_OK);
  CHECK_EQ_INT(needed, strlen("<|startoftext|>") + 1);
  CHECK_EQ_INT(sf_token_text(pipe_, 1 << 30, tok, sizeof tok, NULL), SF_ERR_NOT_FOUND);
  CHECK_EQ_INT(sf_token_text(pipe_, -1, tok, sizeof tok, NULL), SF_ERR_NOT_FOUND);
}

/* ---- defaults: one meaning for "no scheduler" and for an explicit Karras 0 ------------------------ */

static int copy_tree(const char *from, const char *to) {
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
  return system(cmd) == 0;
}

static void test_scheduler_defaults(void) {
  char tmpl[] = "/tmp/sf_runs_XXXXXX";
  char *dir = mkdtemp(tmpl);
  CHECK(dir != NULL);
  if (dir == NULL) return;
  char model[4200], path[16000];
  snprintf(model, sizeof model, "%s/tiny-sd", dir);
  CHECK(copy_tree(tiny_dir, model));
  /* Without scheduler/, a generation samples with SD-1.5's scheduler (PLMS), the same config
   * sf_schedule_create(SF_SAMPLER_DEFAULT, NULL) gives. */
  snprintf(path, sizeof path, "rm -rf '%s/scheduler' && sed -i '/\"scheduler\": \\[/,/\\]/d' '%s/model_index.json'",
           model, model);
  CHECK(system(path) == 0);
  sf_pipeline *p = NULL;
  CHECK_EQ_INT(sf_pipeline_load(ctx, model, NULL, &p), SF_OK);
  sf_params *gp = params_for(5, 2);
  sf_image *img = NULL;
  if (p) CHECK_EQ_INT(sf_generate(p, gp, NULL, NULL, &img), SF_OK);
  CHECK_MSG(img && strstr(sf_image_parameters(img), "Sampler: PLMS") != NULL, "parameters: %s",
            img ? sf_image_parameters(img) : "(none)");
  sf_image_destroy(img);
  sf_pipeline_destroy(p);
  sf_schedule *s = NULL;
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DEFAULT, NULL, NULL, &s), SF_OK);
  CHECK_EQ_INT(sf_schedule_set_steps(s, 2, LAT), SF_OK);
  CHECK_EQ_INT(sf_schedule_evaluations(s), 3); /* PLMS: one evaluation more than its steps */
  sf_schedule_destroy(s);

  /* A folder whose scheduler asks for Karras sigmas: an explicit SF_PARAM_KARRAS_SIGMAS 0 turns
   * them off in a generation exactly as in sf_schedule_create. */
  static const char karras_cfg[] =
      "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, "
      "\"beta_schedule\": \"scaled_linear\", \"use_karras_sigmas\": true, \"steps_offset\": 1}";
  snprintf(path, sizeof path, "mkdir -p '%s/scheduler' && cp '%s/model_index.json' '%s/'", model, tiny_dir, model);
  CHECK(system(path) == 0);
  snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", model);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(karras_cfg, f);
    fclose(f);
  }
  CHECK_EQ_INT(sf_pipeline_load(ctx, model, NULL, &p), SF_OK);
  img = NULL;
  if (p) CHECK_EQ_INT(sf_generate(p, gp, NULL, NULL, &img), SF_OK);
  CHECK(img && strstr(sf_image_parameters(img), "Sampler: DPM++ 2M Karras") != NULL);
  sf_image_destroy(img);
  sf_params_set_int(gp, SF_PARAM_KARRAS_SIGMAS, 0);
  img = NULL;
  if (p) CHECK_EQ_INT(sf_generate(p, gp, NULL, NULL, &img), SF_OK);
  CHECK_MSG(img && strstr(sf_image_parameters(img), "Sampler: DPM++ 2M,") != NULL, "parameters: %s",
            img ? sf_image_parameters(img) : "(none)");
  sf_image_destroy(img);
  sf_pipeline_destroy(p);
  sf_params *ov = NULL;
  sf_params_create(&ov);
  sf_params_set_int(ov, SF_PARAM_KARRAS_SIGMAS, 0);
  sf_schedule *k1 = NULL, *k0 = NULL, *plain = NULL;
  static const char plain_cfg[] =
      "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, "
      "\"beta_schedule\": \"scaled_linear\", \"steps_offset\": 1}";
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DEFAULT, karras_cfg, NULL, &k1), SF_OK);
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DEFAULT, karras_cfg, ov, &k0), SF_OK);
  CHECK_EQ_INT(sf_schedule_create(SF_SAMPLER_DEFAULT, plain_cfg, NULL, &plain), SF_OK);
  float s1[16], s0[16], sp[16];
  size_t n1 = 0, n0 = 0, np = 0;
  sf_schedule_set_steps(k1, 8, LAT);
  sf_schedule_set_steps(k0, 8, LAT);
  sf_schedule_set_steps(plain, 8, LAT);
  CHECK_EQ_INT(sf_schedule_sigmas(k1, s1, 16, &n1), SF_OK);
  CHECK_EQ_INT(sf_schedule_sigmas(k0, s0, 16, &n0), SF_OK);
  CHECK_EQ_INT(sf_schedule_sigmas(plain, sp, 16, &np), SF_OK);
  CHECK(n0 == np && memcmp(s0, sp, n0 * sizeof(float)) == 0);
  CHECK(n1 == n0 && memcmp(s1, s0, n0 * sizeof(float)) != 0);
  sf_schedule_destroy(k1);
  sf_schedule_destroy(k0);
  sf_schedule_destroy(plain);
  sf_params_destroy(ov);
  sf_params_destroy(gp);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  CHECK(system(path) == 0);
}

/* VAEs with other than 4 levels: the image is factor x the latents, whatever the factor (was: a
 * heap overflow with 5 levels, a wrong-sized image with 2 or 3), and img2img encodes at the same
 * factor (was: an overflow with 2 levels). Random weights: only sizes and finiteness matter. */
static void test_vae_levels(void) {
  for (int levels = 2; levels <= 5; levels++) {
    char tmpl[] = "/tmp/sf_levels_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (dir == NULL) return;
    char model[4200], cmd[9000];
    snprintf(model, sizeof model, "%s/tiny-sd", dir);
    CHECK(copy_tree(tiny_dir, model));
    snprintf(cmd, sizeof cmd, "%s/vae/config.json", model);
    FILE *f = fopen(cmd, "w");
    CHECK(f != NULL);
    if (f == NULL) return;
    fprintf(f, "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [");
    for (int i = 0; i < levels; i++) fprintf(f, "%s%d", i ? ", " : "", i ? 32 : 16);
    fprintf(f, "], \"down_block_types\": [");
    for (int i = 0; i < levels; i++) fprintf(f, "%s\"DownEncoderBlock2D\"", i ? ", " : "");
    fprintf(f, "], \"up_block_types\": [");
    for (int i = 0; i < levels; i++) fprintf(f, "%s\"UpDecoderBlock2D\"", i ? ", " : "");
    fprintf(f, "], \"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 1, "
               "\"norm_num_groups\": 8, \"sample_size\": 64, \"scaling_factor\": 0.18215}");
    fclose(f);
    sf_params *load = NULL;
    sf_params_create(&load);
    sf_params_set_int(load, SF_PARAM_RANDOM_WEIGHTS, 1);
    sf_pipeline *p = NULL;
    CHECK_EQ_INT(sf_pipeline_load(ctx, model, load, &p), SF_OK);
    sf_params_destroy(load);
    if (p == NULL) continue;
    int64_t multiple = 0;
    sf_pipeline_get_int(p, SF_INFO_SIZE_MULTIPLE, &multiple);
    CHECK_EQ_INT(multiple, (1 << (levels - 1)) * 2);
    int64_t factor = 0;
    sf_pipeline_get_int(p, SF_INFO_SCALE_FACTOR, &factor);
    CHECK_EQ_INT(factor, 1 << (levels - 1));
    sf_params *gp = params_for(9, 2);
    sf_image *img = NULL;
    CHECK_MSG(sf_generate(p, gp, NULL, NULL, &img) == SF_OK, "%d levels: %s", levels, sf_last_error());
    CHECK(img && sf_image_width(img) == 64 && sf_image_height(img) == 64);
    /* img2img at the generation's size through the same factor */
    if (img) {
      sf_params_set_init_image(gp, sf_image_pixels(img), 64, 64, sf_image_stride(img));
      sf_params_set_float(gp, SF_PARAM_STRENGTH, 0.5);
      sf_image *out = NULL;
      CHECK_MSG(sf_generate(p, gp, NULL, NULL, &out) == SF_OK, "%d levels img2img: %s", levels, sf_last_error());
      CHECK(out && sf_image_width(out) == 64 && sf_image_height(out) == 64);
      sf_image_destroy(out);
      /* an init image of another size is refused, not encoded */
      static uint8_t big[256 * 256 * 3];
      sf_params_set_init_image(gp, big, 256, 256, 256 * 3);
      sf_params_set_int(gp, SF_PARAM_WIDTH, 64);
      sf_params_set_int(gp, SF_PARAM_HEIGHT, 64);
      CHECK_EQ_INT(sf_generate(p, gp, NULL, NULL, &out), SF_ERR_INVALID_ARGUMENT);
    }
    sf_image_destroy(img);
    sf_params_destroy(gp);
    sf_pipeline_destroy(p);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
  }
}

/* Low-memory mode: the same images, one big network resident at a time, and the weight types. */
static void test_low_memory(void) {
  sf_params *load = NULL;
  sf_params_create(&load);
  sf_params_set_int(load, SF_PARAM_LOW_MEMORY, 1);
  sf_pipeline *lm = NULL;
  CHECK_EQ_INT(sf_pipeline_load(ctx, tiny_dir, load, &lm), SF_OK);
  if (lm == NULL) {
    sf_params_destroy(load);
    return;
  }
  int64_t wb_normal = 0, wb_low = -1;
  sf_pipeline_get_int(pipe_, SF_INFO_WEIGHT_BYTES, &wb_normal);
  sf_pipeline_get_int(lm, SF_INFO_WEIGHT_BYTES, &wb_low);
  CHECK_MSG(wb_low >= 0 && wb_low < wb_normal / 4, "low memory holds %lld bytes of weights after load (normal %lld)",
            (long long)wb_low, (long long)wb_normal);
  sf_params *gp = params_for(31, 3);
  sf_image *a = NULL, *b = NULL;
  CHECK_EQ_INT(sf_generate(lm, gp, NULL, NULL, &a), SF_OK);
  CHECK_EQ_INT(sf_generate(pipe_, gp, NULL, NULL, &b), SF_OK);
  CHECK_MSG(same_image(a, b), "low-memory mode changed the image");
  /* after the generation only the decoder (and TAESD) is resident */
  sf_pipeline_get_int(lm, SF_INFO_WEIGHT_BYTES, &wb_low);
  CHECK_MSG(wb_low < wb_normal / 2, "after a generation %lld bytes of weights stay (normal %lld)", (long long)wb_low,
            (long long)wb_normal);
  /* building blocks work too, the networks coming and going */
  float emb[TEXT], emb_ref[TEXT], out[2 * LAT], out_ref[2 * LAT];
  CHECK_EQ_INT(sf_encode_prompt(lm, "a red fox", 0, emb, TEXT), SF_OK);
  CHECK_EQ_INT(sf_encode_prompt(pipe_, "a red fox", 0, emb_ref, TEXT), SF_OK);
  CHECK(memcmp(emb, emb_ref, sizeof emb) == 0);
  CHECK_EQ_INT(sf_unet_predict_v2(lm, lat_in, 2 * LAT, 2, 8, 8, tsteps, 2, text_in, 2 * TEXT, 77, out, 2 * LAT), SF_OK);
  CHECK_EQ_INT(unet_call(out_ref), SF_OK);
  CHECK(memcmp(out, out_ref, sizeof out) == 0);
  sf_image_destroy(a);
  sf_image_destroy(b);
  sf_pipeline_destroy(lm);
  /* f16 and q8 weights load and generate, with less weight memory; f32 is the f32 checkpoint */
  int64_t wb[4] = {0, 0, 0, 0};
  for (int t = SF_WEIGHT_DEFAULT; t <= SF_WEIGHT_Q8; t++) {
    sf_params_set_int(load, SF_PARAM_LOW_MEMORY, 0);
    sf_params_set_int(load, SF_PARAM_WEIGHT_TYPE, t);
    sf_pipeline *pt = NULL;
    CHECK_EQ_INT(sf_pipeline_load(ctx, tiny_dir, load, &pt), SF_OK);
    if (pt == NULL) continue;
    sf_pipeline_get_int(pt, SF_INFO_WEIGHT_BYTES, &wb[t]);
    sf_image *img = NULL;
    CHECK_EQ_INT(sf_generate(pt, gp, NULL, NULL, &img), SF_OK);
    if (t == SF_WEIGHT_F32) {
      sf_image *ref = NULL;
      CHECK_EQ_INT(sf_generate(pipe_, gp, NULL, NULL, &ref), SF_OK);
      CHECK_MSG(same_image(img, ref), "explicit f32 differs from the default on an f32 checkpoint");
      sf_image_destroy(ref);
    }
    sf_image_destroy(img);
    sf_pipeline_destroy(pt);
  }
  CHECK_MSG(wb[SF_WEIGHT_F32] == wb[SF_WEIGHT_DEFAULT] && wb[SF_WEIGHT_F16] < wb[SF_WEIGHT_F32] &&
                wb[SF_WEIGHT_Q8] < wb[SF_WEIGHT_F16],
            "weight bytes f32 %lld f16 %lld q8 %lld (default %lld)", (long long)wb[1], (long long)wb[2],
            (long long)wb[3], (long long)wb[0]);
  sf_params_set_int(load, SF_PARAM_WEIGHT_TYPE, 9);
  sf_pipeline *bad = NULL;
  CHECK_EQ_INT(sf_pipeline_load(ctx, tiny_dir, load, &bad), SF_ERR_INVALID_ARGUMENT);
  sf_params_destroy(gp);
  sf_params_destroy(load);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  snprintf(tiny_dir, sizeof tiny_dir, "%s/public/tiny-sd", fx);
  char taesd[4200];
  snprintf(taesd, sizeof taesd, "%s/public/taesd", fx);
  if (sf_context_create(&ctx) != SF_OK) return 1;
  const char *threads = getenv("SF_TEST_THREADS");
  if (threads) CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_THREADS, atoi(threads)), SF_OK);
  sf_params *load = NULL;
  sf_params_create(&load);
  sf_params_set_string(load, SF_PARAM_TAESD_PATH, taesd);
  sf_status s = sf_pipeline_load(ctx, tiny_dir, load, &pipe_);
  sf_params_destroy(load);
  CHECK_MSG(s == SF_OK, "%s", sf_context_last_error(ctx));
  if (s != SF_OK) TEST_MAIN_END();
  fill_inputs();
  test_cancel_is_per_run();
  test_cancel_from_another_thread();
  test_concurrent_runs();
  test_two_contexts();
  if (threads == NULL) test_threads_between_steps();
  test_sized_buffers();
  test_batch_and_seeds();
  test_scheduler_defaults();
  test_vae_levels();
  test_low_memory();
  sf_pipeline_destroy(pipe_);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
