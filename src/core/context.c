#include "core/context.h"

#include "core/pool.h"

#include <cpuinfo.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xnnpack.h>

static _Thread_local char tls_last_error[1024];

void sf_thread_set_error(const char *msg) {
  snprintf(tls_last_error, sizeof tls_last_error, "%s", msg ? msg : "");
}

const char *sf_thread_last_error(void) { return tls_last_error; }

static sf_status ctx_verror(sf_context *ctx, sf_status status, const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  sf_thread_set_error(buf);
  if (ctx != NULL) {
    pthread_mutex_lock(&ctx->error_lock);
    memcpy(ctx->last_error, buf, sizeof buf);
    pthread_mutex_unlock(&ctx->error_lock);
    sf_ctx_log(ctx, SF_LOG_ERROR, "%s", buf);
  }
  return status;
}

sf_status sf_ctx_error(sf_context *ctx, sf_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ctx_verror(ctx, status, fmt, ap);
  va_end(ap);
  return status;
}

sf_status sf_ctx_take_diag(sf_context *ctx, const sf_diag *d) {
  if (d->status == SF_OK) return SF_OK;
  return sf_ctx_error(ctx, d->status, "%s", d->msg);
}

void sf_ctx_log(const sf_context *ctx, sf_log_level level, const char *fmt, ...) {
  if (ctx == NULL || ctx->log_fn == NULL || (int)level < atomic_load(&ctx->log_level)) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  ctx->log_fn(ctx->log_user, level, buf);
}

/* ---- one-time backend initialisation ---- */

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static sf_status backend_status = SF_OK;  /* written once inside pthread_once */
static char backend_msg[256];

/* cpuinfo and XNNPACK initialise once per process, failure included (their own pthread_once):
 * a failure here is final, and the message says so. cpuinfo_initialize reports no cause; an
 * allocation that failed inside it leaves errno at ENOMEM. */
static void backend_init_once(void) {
  errno = 0;
  if (!cpuinfo_initialize()) {
    const int oom = errno == ENOMEM;
    backend_status = oom ? SF_ERR_OUT_OF_MEMORY : SF_ERR_BACKEND;
    snprintf(backend_msg, sizeof backend_msg, "cpuinfo_initialize failed%s",
             oom ? ": out of memory (cpuinfo cannot be initialised again in this process)" : "");
    return;
  }
  enum xnn_status xs = xnn_initialize(NULL);
  if (xs != xnn_status_success) {
    backend_status = xs == xnn_status_unsupported_hardware ? SF_ERR_UNSUPPORTED
                     : xs == xnn_status_out_of_memory      ? SF_ERR_OUT_OF_MEMORY
                                                           : SF_ERR_BACKEND;
    snprintf(backend_msg, sizeof backend_msg, "xnn_initialize failed (status %d)%s", (int)xs,
             xs == xnn_status_unsupported_hardware ? ": this CPU is not supported by XNNPACK"
             : xs == xnn_status_out_of_memory      ? ": out of memory"
                                                   : "");
  }
}

sf_status sf_backend_init(sf_diag *d) {
  pthread_once(&backend_once, backend_init_once);
  if (backend_status != SF_OK) return sf_diag_set(d, backend_status, "%s", backend_msg);
  return SF_OK;
}

/* ---- threads ---- */

static int default_thread_count(void) {
  /* Physical cores: hyper-threads share the FMA units the kernels saturate. */
  return sf_physical_cores();
}

pthreadpool_t sf_ctx_pool_acquire(sf_context *ctx) {
  pthread_rwlock_rdlock(&ctx->pool_lock);
  return ctx->pool;
}

void sf_ctx_pool_release(sf_context *ctx) { pthread_rwlock_unlock(&ctx->pool_lock); }

/* pthreadpool 2021-05 (Debian 12) starts its workers with pthread_create and ignores a failure:
 * pthreadpool_create then waits forever for the worker that never checks in (src/pthreads.c,
 * wait_worker_threads), and the host app hangs. So the pool is made on a helper thread of ours,
 * which first starts (and joins) as many threads as the pool will, with the same default
 * attributes: a failure there (no memory for a stack or its TLS, a thread limit) is reported as
 * SF_ERR_OUT_OF_MEMORY without calling pthreadpool_create, and the stacks these threads leave in
 * the C library's stack cache are what pthreadpool's own pthread_create calls then reuse, without
 * allocating. Should one of those fail all the same (another thread took the cached stacks, or
 * the cache kept fewer: it holds 40 MiB), the caller stops waiting after SF_POOL_START_SECONDS
 * and reports SF_ERR_OUT_OF_MEMORY; the helper, stuck in pthreadpool_create, is then detached and
 * abandoned (it and the pool's memory are lost, but nothing waits forever). */
#define SF_POOL_START_SECONDS 10

typedef struct pool_start {
  pthread_mutex_t lock;
  pthread_cond_t done_cond; /* on CLOCK_MONOTONIC */
  size_t threads;
  pthreadpool_t pool;
  int err;       /* pthread_create's error for a trial thread, ENOMEM, or 0 */
  int done;      /* the helper has finished */
  int abandoned; /* the caller stopped waiting: the helper cleans up */
} pool_start;

static void *trial_main(void *arg) { return arg; }

static void pool_start_free(pool_start *ps) {
  pthread_cond_destroy(&ps->done_cond);
  pthread_mutex_destroy(&ps->lock);
  free(ps);
}

static void *pool_start_main(void *arg) {
  pool_start *ps = arg;
  size_t trials = ps->threads - 1, started = 0;
  int err = 0;
  pthread_t *t = malloc(trials * sizeof *t);
  if (t == NULL) err = ENOMEM;
  while (err == 0 && started < trials) {
    err = pthread_create(&t[started], NULL, trial_main, NULL);
    if (err == 0) started++;
  }
  for (size_t i = 0; i < started; i++) pthread_join(t[i], NULL);
  free(t);
  pthreadpool_t pool = err == 0 ? pthreadpool_create(ps->threads) : NULL;
  if (err == 0 && pool == NULL) err = ENOMEM;
  pthread_mutex_lock(&ps->lock);
  const int abandoned = ps->abandoned;
  ps->pool = pool;
  ps->err = err;
  ps->done = 1;
  pthread_cond_signal(&ps->done_cond);
  pthread_mutex_unlock(&ps->lock);
  if (abandoned) {
    if (pool != NULL) pthreadpool_destroy(pool);
    pool_start_free(ps);
  }
  return NULL;
}

/* pthreadpool_create(n), n > 1, in a way that cannot wait forever (above). */
static sf_status pool_create(sf_context *ctx, int n, pthreadpool_t *out) {
  *out = NULL;
  pool_start *ps = calloc(1, sizeof *ps);
  if (ps == NULL) return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "threads: out of memory");
  pthread_condattr_t ca;
  int ok_lock = pthread_mutex_init(&ps->lock, NULL) == 0;
  int ok_attr = pthread_condattr_init(&ca) == 0;
  int ok_cond = ok_lock && ok_attr && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&ps->done_cond, &ca) == 0;
  if (ok_attr) pthread_condattr_destroy(&ca);
  if (!ok_cond) {
    if (ok_lock) pthread_mutex_destroy(&ps->lock);
    free(ps);
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "threads: out of memory");
  }
  ps->threads = (size_t)n;
  pthread_t helper;
  int err = pthread_create(&helper, NULL, pool_start_main, ps);
  if (err != 0) {
    pool_start_free(ps);
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "threads: cannot start a thread (%s): out of memory or threads",
                        strerror(err));
  }
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += SF_POOL_START_SECONDS;
  pthread_mutex_lock(&ps->lock);
  while (!ps->done && pthread_cond_timedwait(&ps->done_cond, &ps->lock, &until) != ETIMEDOUT) {
  }
  if (!ps->done) {
    ps->abandoned = 1;
    pthread_mutex_unlock(&ps->lock);
    pthread_detach(helper);
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY,
                        "threads: a worker thread of pthreadpool_create(%d) did not start within %d s (out of memory "
                        "or threads?); the attempt is abandoned",
                        n, SF_POOL_START_SECONDS);
  }
  pthread_mutex_unlock(&ps->lock);
  pthread_join(helper, NULL); /* it has finished: nothing of it outlives the call */
  err = ps->err;
  *out = ps->pool;
  pool_start_free(ps);
  if (err != 0)
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY,
                        "threads: cannot start %d worker threads (%s): out of memory or threads", n, strerror(err));
  return SF_OK;
}

sf_status sf_ctx_set_threads(sf_context *ctx, int64_t threads) {
  if (threads > 1024) return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "threads: %lld is more than 1024", (long long)threads);
  int n = threads <= 0 ? default_thread_count() : (int)threads;
  if (n == ctx->threads) return SF_OK;
  pthreadpool_t pool = NULL;
  if (n > 1) {
    sf_status s = pool_create(ctx, n, &pool);
    if (s != SF_OK) return s;
  }
  if (ctx->pool != NULL) pthreadpool_destroy(ctx->pool);
  ctx->pool = pool;
  ctx->threads = n;
  int cpus = sf_online_cpus();
  if (n > cpus)
    sf_ctx_log(ctx, SF_LOG_WARN,
               "%d threads on %d online CPUs: oversubscribed worker threads wait on each other, which makes "
               "every step slower; use %d or fewer (0 = one per core)",
               n, cpus, cpus);
  return SF_OK;
}


sf_status sf_ctx_new(sf_context **out) {
  *out = NULL;
  sf_diag d = {0};
  if (sf_backend_init(&d) != SF_OK) return sf_ctx_take_diag(NULL, &d);
  sf_context *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_context_create: out of memory");
  atomic_init(&ctx->log_level, SF_LOG_INFO);
  if (pthread_rwlock_init(&ctx->pool_lock, NULL) != 0) {
    free(ctx);
    return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_context_create: out of memory");
  }
  if (pthread_mutex_init(&ctx->error_lock, NULL) != 0) {
    pthread_rwlock_destroy(&ctx->pool_lock);
    free(ctx);
    return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_context_create: out of memory");
  }
  sf_status s = sf_ctx_set_threads(ctx, 0);
  if (s != SF_OK) {
    sf_ctx_free(ctx);
    return s;
  }
  *out = ctx;
  return SF_OK;
}

void sf_ctx_free(sf_context *ctx) {
  if (ctx == NULL) return;
  if (ctx->pool != NULL) pthreadpool_destroy(ctx->pool);
  pthread_mutex_destroy(&ctx->error_lock);
  pthread_rwlock_destroy(&ctx->pool_lock);
  free(ctx);
}
