/* Jobs inside the engine: the step-wise generation the public sf_job_* functions wrap. */
#ifndef SF_PIPELINE_JOB_H
#define SF_PIPELINE_JOB_H

#include "pipeline/pipeline.h"
#include "pipeline/request.h"

typedef struct sf_job sf_job;

/* Starts a job for the request; seed_offset is added to its seed (batches). */
sf_status sf_job_create(sf_pipeline *p, const sf_request *rq, int64_t seed_offset, sf_job **out, sf_diag *d);
void sf_job_free(sf_job *j);
sf_status sf_job_run_step(sf_job *j, sf_diag *d);
/* Runs the remaining steps, decodes (once) and, when out is not NULL, makes the RGB8 image. */
sf_status sf_job_run_finish(sf_job *j, sf_image **out, sf_diag *d);
sf_status sf_job_make_preview(sf_job *j, sf_image **out, sf_diag *d);
/* The decoded image as floats in [0, 1] (diffusers' output_type "np"/"pt" values). */
sf_status sf_job_float_image(const sf_job *j, int nhwc, float *out, size_t count, sf_diag *d);
size_t sf_job_image_floats(const sf_job *j);
sf_pipeline *sf_job_pipeline(const sf_job *j);
int sf_job_done(const sf_job *j);
int sf_job_total(const sf_job *j);
size_t sf_job_count(const sf_job *j);
const float *sf_job_current_latents(const sf_job *j);
uint64_t sf_job_used_seed(const sf_job *j);
void sf_job_request_cancel(sf_job *j);
int sf_job_cancelled(const sf_job *j);

#endif
