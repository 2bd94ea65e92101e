/* The context as the rest of the library sees it: the thread pool every op runs on, the
 * log sink and the last error. */
#ifndef SF_CORE_CONTEXT_H
#define SF_CORE_CONTEXT_H

#include <pthreadpool.h>
#include <stdatomic.h>

#include "core/diag.h"
#include "snapfusion.h"

struct sf_context {
  pthreadpool_t pool; /* NULL when running on the calling thread only */
  int threads;
  sf_log_fn log_fn;
  void *log_user;
  sf_log_level log_level;
  atomic_int busy; /* jobs in flight: the pool must not be replaced under them */
  char last_error[1024];
};

/* Records a failure on ctx (may be NULL) and on the calling thread; returns status. */
sf_status sf_ctx_error(sf_context *ctx, sf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies a diag's status and message to ctx and the thread; returns its status. */
sf_status sf_ctx_take_diag(sf_context *ctx, const sf_diag *d);
void sf_ctx_log(const sf_context *ctx, sf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records msg as the thread's last error (used where no context exists). */
void sf_thread_set_error(const char *msg);

/* One-time, thread-safe initialisation of XNNPACK and cpuinfo. */
sf_status sf_backend_init(sf_diag *d);

#endif
