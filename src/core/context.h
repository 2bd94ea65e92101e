/* The context as the rest of the library sees it: the thread pool every op runs on, the
 * log sink and the last error.
 *
 * Threads: network calls of any number of runs (on any pipelines of this context) may go on
 * at once from different threads; each holds pool_lock for reading while it uses the pool,
 * and replacing the pool (SF_PARAM_THREADS) needs it for writing, so the thread count cannot
 * change under a running call. Runs share the pool: pthreadpool serialises the parallel
 * sections of concurrent callers, so they interleave op by op. */
#ifndef SF_CORE_CONTEXT_H
#define SF_CORE_CONTEXT_H

#include <pthread.h>
#include <pthreadpool.h>
#include <stdatomic.h>

#include "core/diag.h"
#include "snapfusion.h"

struct sf_context {
  pthreadpool_t pool; /* NULL when running on the calling thread only */
  int threads;
  pthread_rwlock_t pool_lock;
  sf_log_fn log_fn;
  void *log_user;
  _Atomic int log_level;
  pthread_mutex_t error_lock; /* last_error is written by whichever thread fails */
  char last_error[1024];
};

/* The pool for one network call (read-locks it; NULL = the calling thread), and its release. */
pthreadpool_t sf_ctx_pool_acquire(sf_context *ctx);
void sf_ctx_pool_release(sf_context *ctx);

/* Records a failure on ctx (may be NULL) and on the calling thread; returns status. */
sf_status sf_ctx_error(sf_context *ctx, sf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies a diag's status and message to ctx and the thread; returns its status. */
sf_status sf_ctx_take_diag(sf_context *ctx, const sf_diag *d);
void sf_ctx_log(const sf_context *ctx, sf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records msg as the thread's last error (used where no context exists), and reads it. */
void sf_thread_set_error(const char *msg);
const char *sf_thread_last_error(void);

/* A context with default options (backend initialised, one thread per core), and its end. */
sf_status sf_ctx_new(sf_context **out);
void sf_ctx_free(sf_context *ctx);
/* Replaces the pool for `threads` workers (<= 0: one per core); the caller holds pool_lock
 * for writing (or owns ctx alone). Warns through the log when above the online CPUs. */
sf_status sf_ctx_set_threads(sf_context *ctx, int64_t threads);

/* One-time, thread-safe initialisation of XNNPACK and cpuinfo. */
sf_status sf_backend_init(sf_diag *d);

#endif
