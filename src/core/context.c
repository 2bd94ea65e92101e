#include "core/context.h"

#include "core/pool.h"

#include <cpuinfo.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

sf_status sf_ctx_set_threads(sf_context *ctx, int64_t threads) {
  if (threads > 1024) return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "threads: %lld is more than 1024", (long long)threads);
  int n = threads <= 0 ? default_thread_count() : (int)threads;
  if (n == ctx->threads) return SF_OK;
  pthreadpool_t pool = NULL;
  if (n > 1) {
    pool = pthreadpool_create((size_t)n);
    if (pool == NULL) return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "pthreadpool_create(%d) failed", n);
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
