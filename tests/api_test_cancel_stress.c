/* Cancels at random moments, from another thread, into running generations (issue 16 #5): no
 * crash, no leak (ASan), no hang (a watchdog), no lost cancel, and every generation that
 * completes gives exactly the reference image.
 *
 * A cancel is "lost" when the run returns SF_OK although the cancel reached it before its
 * last chance to stop. The oracle is exact, with sequentially consistent atomics:
 *  - job API: the worker publishes the index of the call it is about to make (step 1..total,
 *    then total+1 for sf_job_finish) before making it; the canceller calls sf_job_cancel, then
 *    reads that index k. Every call the worker makes after the store it read happens after the
 *    cancel, so every call with an index above k must return SF_ERR_CANCELLED.
 *  - sf_generate: the progress callback publishes the step it reports; the canceller reads the
 *    run count (SF_INFO_ACTIVE_RUNS) before sf_pipeline_cancel and the step after it. If the run
 *    was registered (count 1) and the last step's callback had not started, the decoder or a
 *    later step polls the token after the cancel: the call must return SF_ERR_CANCELLED.
 *
 * SF_CANCEL_STRESS_N cancels (default 200; the documented local run uses 10000), half through
 * each API. SF_TEST_THREADS sets the context's worker threads (the TSan job uses 1). */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <snapfusion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static sf_context *ctx;
static sf_pipeline *pipe_;
static sf_image *reference;
enum { STEPS = 3 };

static sf_params *params(void) {
  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PROMPT, "a lighthouse at dusk");
  sf_params_set_string(p, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(p, SF_PARAM_WIDTH, 64);
  sf_params_set_int(p, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(p, SF_PARAM_STEPS, STEPS);
  sf_params_set_int(p, SF_PARAM_SEED, 77);
  return p;
}

static int same_image(const sf_image *a, const sf_image *b) {
  return a && b && sf_image_width(a) == sf_image_width(b) && sf_image_height(a) == sf_image_height(b) &&
         memcmp(sf_image_pixels(a), sf_image_pixels(b), sf_image_stride(a) * sf_image_height(a)) == 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us) {
  if (us <= 0) return;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void watchdog(int sig) {
  (void)sig;
  static const char msg[] = "api_test_cancel_stress: a run hung (watchdog)\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}

/* ---- one round ----------------------------------------------------------------------------- */

typedef struct round {
  int use_job;            /* 1: job API, 0: sf_generate */
  long delay_us;          /* when the canceller cancels, after the worker says it starts */
  atomic_int started;     /* the worker is about to start the run */
  atomic_int calling;     /* job API: index of the call in progress (1..STEPS, STEPS+1 = finish) */
  atomic_int reported;    /* sf_generate: the step the progress callback last started reporting */
  _Atomic(sf_job *) job;  /* job API: the job to cancel, once started */
  atomic_int start_failed;
  /* results */
  sf_status status;
  int cancel_seen_at;     /* the canceller's reading of calling/reported after its cancel */
  int was_active;         /* sf_generate: the run was registered before the cancel */
  int lost;               /* a call after the cancel returned SF_OK */
  sf_image *image;
} round_t;

static int on_progress(void *user, int step, int total) {
  (void)total;
  round_t *r = user;
  atomic_store(&r->reported, step);
  return 0;
}

static void *worker(void *arg) {
  round_t *r = arg;
  sf_params *p = params();
  if (r->use_job) {
    sf_job *job = NULL;
    atomic_store(&r->started, 1);
    r->status = sf_job_start(pipe_, p, &job);
    if (r->status != SF_OK) atomic_store(&r->start_failed, 1);
    if (r->status == SF_OK) {
      atomic_store(&r->job, job);
      for (int k = 1; k <= STEPS + 1 && r->status == SF_OK; k++) {
        atomic_store(&r->calling, k);
        r->status = k <= STEPS ? sf_job_step(job) : sf_job_finish(job, &r->image);
      }
      /* wait for the canceller to be done with the job before destroying it */
      while (atomic_load(&r->job) != NULL) sched_yield();
      sf_job_destroy(job);
    }
  } else {
    atomic_store(&r->started, 1);
    r->status = sf_generate(pipe_, p, on_progress, r, &r->image);
  }
  sf_params_destroy(p);
  return NULL;
}

static void *canceller(void *arg) {
  round_t *r = arg;
  while (!atomic_load(&r->started)) sched_yield();
  sleep_us(r->delay_us);
  if (r->use_job) {
    sf_job *job;
    while ((job = atomic_load(&r->job)) == NULL) {
      if (atomic_load(&r->start_failed)) break;
      sched_yield();
    }
    if (job != NULL) {
      sf_job_cancel(job);
      r->cancel_seen_at = atomic_load(&r->calling);
      atomic_store(&r->job, NULL); /* hand the job back for destruction */
    }
  } else {
    int64_t active = 0;
    sf_pipeline_get_int(pipe_, SF_INFO_ACTIVE_RUNS, &active);
    sf_pipeline_cancel(pipe_);
    r->cancel_seen_at = atomic_load(&r->reported);
    r->was_active = active > 0;
  }
  return NULL;
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  const char *env_n = getenv("SF_CANCEL_STRESS_N");
  long n = env_n ? atol(env_n) : 200;
  if (n < 2) n = 2;
  if (sf_context_create(&ctx) != SF_OK) return 1;
  const char *threads = getenv("SF_TEST_THREADS");
  if (threads) CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_THREADS, atoi(threads)), SF_OK);
  CHECK_EQ_INT(sf_pipeline_load(ctx, dir, NULL, &pipe_), SF_OK);
  if (pipe_ == NULL) TEST_MAIN_END();
  /* The reference image, and how long a run takes (the cancels spread over ~1.3 runs). */
  sf_params *p = params();
  double t0 = now_s();
  CHECK_EQ_INT(sf_generate(pipe_, p, NULL, NULL, &reference), SF_OK);
  double run_s = now_s() - t0;
  sf_params_destroy(p);
  long span_us = (long)(run_s * 1.3e6) + 50;
  signal(SIGALRM, watchdog);

  uint64_t rng = 0x9e3779b97f4a7c15ull;
  long cancelled = 0, completed = 0, lost = 0, bad_images = 0, bad_status = 0;
  for (long i = 0; i < n; i++) {
    round_t r;
    memset(&r, 0, sizeof r);
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    r.use_job = (int)(i & 1);
    r.delay_us = (long)((rng >> 33) % (uint64_t)span_us);
    atomic_init(&r.started, 0);
    atomic_init(&r.calling, 0);
    atomic_init(&r.reported, 0);
    atomic_init(&r.job, NULL);
    atomic_init(&r.start_failed, 0);
    alarm(60);
    pthread_t tw, tc;
    pthread_create(&tw, NULL, worker, &r);
    pthread_create(&tc, NULL, canceller, &r);
    pthread_join(tc, NULL);
    pthread_join(tw, NULL);
    alarm(0);
    if (r.status == SF_OK) {
      completed++;
      if (!same_image(r.image, reference)) bad_images++;
      /* was it allowed to complete? */
      if (r.use_job && r.cancel_seen_at <= STEPS) lost++;                          /* finish came after */
      if (!r.use_job && r.was_active && r.cancel_seen_at < STEPS) lost++;          /* a poll came after */
    } else if (r.status == SF_ERR_CANCELLED) {
      cancelled++;
      CHECK(r.image == NULL);
    } else {
      bad_status++;
      fprintf(stderr, "round %ld: %s: %s\n", i, sf_status_string(r.status), sf_last_error());
    }
    sf_image_destroy(r.image);
  }
  printf("%ld cancels: %ld runs cancelled, %ld completed (the cancel came too late), %ld lost, %ld wrong images, "
         "%ld other statuses; a run took %.1f ms\n",
         n, cancelled, completed, lost, bad_images, bad_status, run_s * 1e3);
  CHECK_EQ_INT(lost, 0);
  CHECK_EQ_INT(bad_images, 0);
  CHECK_EQ_INT(bad_status, 0);
  CHECK_MSG(cancelled > 0 && completed + cancelled == n, "%ld cancelled, %ld completed of %ld", cancelled, completed,
            n);
  /* Nothing is left in flight, and the pipeline still works. */
  int64_t active = -1;
  sf_pipeline_get_int(pipe_, SF_INFO_ACTIVE_RUNS, &active);
  CHECK_EQ_INT(active, 0);
  sf_image *again = NULL;
  p = params();
  CHECK_EQ_INT(sf_generate(pipe_, p, NULL, NULL, &again), SF_OK);
  CHECK(same_image(again, reference));
  sf_image_destroy(again);
  sf_params_destroy(p);
  sf_image_destroy(reference);
  sf_pipeline_destroy(pipe_);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
