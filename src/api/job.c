/* The public job API (sf_job_*, sf_generate, sf_generate_batch, sf_pipeline_cancel) over the
 * engine's jobs (pipeline/job.h). */
#include <stdlib.h>

#include "pipeline/job.h"

static sf_status fail(sf_pipeline *p, sf_diag *d, const char *fn) {
  sf_diag_prefix(d, "%s: ", fn);
  return sf_ctx_take_diag(p->ctx, d);
}

sf_status sf_job_start(sf_pipeline *p, const sf_params *params, sf_job **out_job) {
  if (out_job) *out_job = NULL;
  if (p == NULL || params == NULL || out_job == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_start: NULL argument");
  sf_diag d = {0};
  sf_request rq;
  if (sf_request_for_generation(params, &rq, &d) != SF_OK) return fail(p, &d, "sf_job_start");
  if (rq.batch_count != 1)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_job_start: SF_PARAM_BATCH_COUNT %d: a job makes one image (use sf_generate_batch)",
                        rq.batch_count);
  if (sf_job_create(p, &rq, 0, out_job, &d) != SF_OK) return fail(p, &d, "sf_job_start");
  return SF_OK;
}

sf_status sf_job_step(sf_job *j) {
  if (j == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_step: job is NULL");
  sf_diag d = {0};
  if (sf_job_run_step(j, &d) != SF_OK) return fail(sf_job_pipeline(j), &d, "sf_job_step");
  return SF_OK;
}

int sf_job_steps_done(const sf_job *j) { return j ? sf_job_done(j) : 0; }
int sf_job_steps_total(const sf_job *j) { return j ? sf_job_total(j) : 0; }
size_t sf_job_latent_count(const sf_job *j) { return j ? sf_job_count(j) : 0; }
uint64_t sf_job_seed(const sf_job *j) { return j ? sf_job_used_seed(j) : 0; }
size_t sf_job_image_count(const sf_job *j) { return j ? sf_job_image_floats(j) : 0; }

sf_status sf_job_latents(const sf_job *j, float *out, size_t count) {
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_latents: NULL argument");
  size_t n = sf_job_count(j);
  if (count < n)
    return sf_ctx_error(sf_job_pipeline(j)->ctx, SF_ERR_INVALID_ARGUMENT, "sf_job_latents: %zu floats given, %zu needed",
                        count, n);
  const float *src = sf_job_current_latents(j);
  for (size_t i = 0; i < n; i++) out[i] = src[i];
  return SF_OK;
}

sf_status sf_job_preview(sf_job *j, sf_image **out) {
  if (out) *out = NULL;
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_preview: NULL argument");
  sf_diag d = {0};
  if (sf_job_make_preview(j, out, &d) != SF_OK) return fail(sf_job_pipeline(j), &d, "sf_job_preview");
  return SF_OK;
}

sf_status sf_job_finish(sf_job *j, sf_image **out) {
  if (out) *out = NULL;
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_finish: NULL argument");
  sf_diag d = {0};
  if (sf_job_run_finish(j, out, &d) != SF_OK) return fail(sf_job_pipeline(j), &d, "sf_job_finish");
  return SF_OK;
}

sf_status sf_job_image_f32(const sf_job *j, sf_layout layout, float *out, size_t capacity) {
  if (j == NULL || out == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_job_image_f32: NULL argument");
  if (layout != SF_LAYOUT_NCHW && layout != SF_LAYOUT_NHWC)
    return sf_ctx_error(sf_job_pipeline(j)->ctx, SF_ERR_INVALID_ARGUMENT, "sf_job_image_f32: %d is not a sf_layout",
                        (int)layout);
  sf_diag d = {0};
  if (sf_job_float_image(j, layout == SF_LAYOUT_NHWC, out, capacity, &d) != SF_OK)
    return fail(sf_job_pipeline(j), &d, "sf_job_image_f32");
  return SF_OK;
}

void sf_job_cancel(sf_job *j) {
  if (j != NULL) sf_job_request_cancel(j);
}

void sf_job_destroy(sf_job *j) { sf_job_free(j); }

void sf_pipeline_cancel(sf_pipeline *p) {
  if (p != NULL) sf_run_cancel_all(p);
}

/* Steps a started job to its image, reporting progress as step `base + done` of `total`. */
static sf_status run_job(sf_pipeline *p, sf_job *j, sf_progress_fn progress, void *user, int base, int total,
                         sf_image **out, sf_diag *d) {
  while (sf_job_done(j) < sf_job_total(j)) {
    sf_status s = sf_job_run_step(j, d);
    if (s != SF_OK) return s;
    if (progress != NULL && progress(user, base + sf_job_done(j), total) != 0) {
      sf_job_request_cancel(j);
      return sf_diag_set(d, SF_ERR_CANCELLED, "cancelled by the progress callback");
    }
  }
  (void)p;
  return sf_job_run_finish(j, out, d);
}

sf_status sf_generate(sf_pipeline *p, const sf_params *params, sf_progress_fn progress, void *user, sf_image **out) {
  if (out) *out = NULL;
  if (p == NULL || params == NULL || out == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_generate: NULL argument");
  sf_diag d = {0};
  sf_request rq;
  if (sf_request_for_generation(params, &rq, &d) != SF_OK) return fail(p, &d, "sf_generate");
  if (rq.batch_count != 1)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT,
                        "sf_generate: SF_PARAM_BATCH_COUNT %d: sf_generate makes one image (use sf_generate_batch)",
                        rq.batch_count);
  sf_job *j = NULL;
  sf_status s = sf_job_create(p, &rq, 0, &j, &d);
  if (s == SF_OK) s = run_job(p, j, progress, user, 0, sf_job_total(j), out, &d);
  sf_job_free(j);
  return s == SF_OK ? SF_OK : fail(p, &d, "sf_generate");
}

sf_status sf_generate_batch(sf_pipeline *p, const sf_params *params, sf_progress_fn progress, void *user,
                            sf_image **out_images, size_t capacity, size_t *out_count) {
  if (out_count) *out_count = 0;
  if (p == NULL || params == NULL || out_images == NULL || out_count == NULL)
    return sf_ctx_error(p ? p->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_generate_batch: NULL argument");
  sf_diag d = {0};
  sf_request rq;
  if (sf_request_for_generation(params, &rq, &d) != SF_OK) return fail(p, &d, "sf_generate_batch");
  if ((size_t)rq.batch_count > capacity)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_generate_batch: room for %zu images, %d asked for",
                        capacity, rq.batch_count);
  for (size_t i = 0; i < capacity; i++) out_images[i] = NULL;
  sf_status s = SF_OK;
  int total = 0;
  for (int i = 0; s == SF_OK && i < rq.batch_count; i++) {
    sf_job *j = NULL;
    s = sf_job_create(p, &rq, i, &j, &d);
    if (s == SF_OK && i == 0) {
      total = sf_job_total(j) * rq.batch_count;
      /* One random seed for the batch; the images then take consecutive seeds from it. */
      rq.seed = sf_job_used_seed(j);
      rq.seed_random = 0;
    }
    if (s == SF_OK) s = run_job(p, j, progress, user, i * sf_job_total(j), total, &out_images[i], &d);
    sf_job_free(j);
    if (s == SF_OK) *out_count = (size_t)i + 1;
  }
  return s == SF_OK ? SF_OK : fail(p, &d, "sf_generate_batch");
}
