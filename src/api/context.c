/* The public context functions (sf_context_*, sf_last_error) over core/context.h. */
#include <stdlib.h>

#include "core/context.h"

const char *sf_last_error(void) { return sf_thread_last_error(); }

sf_status sf_context_create(sf_context **out_ctx) {
  if (out_ctx == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_context_create: out_ctx is NULL");
  return sf_ctx_new(out_ctx);
}

void sf_context_destroy(sf_context *ctx) { sf_ctx_free(ctx); }

sf_status sf_context_set_int(sf_context *ctx, sf_param key, int64_t value) {
  if (ctx == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_context_set_int: ctx is NULL");
  switch (key) {
    case SF_PARAM_THREADS: {
      if (pthread_rwlock_trywrlock(&ctx->pool_lock) != 0)
        return sf_ctx_error(ctx, SF_ERR_BAD_STATE, "cannot change threads while a network call of this context is running");
      sf_status s = sf_ctx_set_threads(ctx, value);
      pthread_rwlock_unlock(&ctx->pool_lock);
      return s;
    }
    case SF_PARAM_LOG_LEVEL:
      if (value < SF_LOG_DEBUG || value > SF_LOG_ERROR)
        return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "log level %lld is not a sf_log_level", (long long)value);
      atomic_store(&ctx->log_level, (int)value);
      return SF_OK;
    default:
      return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "parameter %d is not a context parameter", (int)key);
  }
}

sf_status sf_context_get_int(const sf_context *ctx, sf_param key, int64_t *out_value) {
  if (ctx == NULL || out_value == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_context_get_int: NULL argument");
  switch (key) {
    case SF_PARAM_THREADS: {
      sf_context *c = (sf_context *)ctx;
      pthread_rwlock_rdlock(&c->pool_lock);
      *out_value = c->threads;
      pthread_rwlock_unlock(&c->pool_lock);
      return SF_OK;
    }
    case SF_PARAM_LOG_LEVEL: *out_value = atomic_load(&ctx->log_level); return SF_OK;
    default:
      return sf_ctx_error((sf_context *)ctx, SF_ERR_INVALID_ARGUMENT, "parameter %d is not a context parameter", (int)key);
  }
}

sf_status sf_context_set_log_callback(sf_context *ctx, sf_log_fn callback, void *user_data) {
  if (ctx == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_context_set_log_callback: ctx is NULL");
  ctx->log_fn = callback;
  ctx->log_user = user_data;
  return SF_OK;
}

const char *sf_context_last_error(const sf_context *ctx) { return ctx ? ctx->last_error : ""; }
