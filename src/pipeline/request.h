/* One decoder of the sf_params a caller passes to a generation (sf_job_start, sf_generate,
 * sf_generate_batch) or to sf_schedule_create: every key is read, type- and range-checked
 * here once, into a typed request the engine uses. Pointers into params are borrowed: valid
 * while params is. */
#ifndef SF_PIPELINE_REQUEST_H
#define SF_PIPELINE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "sched/sampler.h"
#include "snapfusion.h"

typedef struct sf_request {
  int64_t width, height;   /* 0: unset (the init image's size, else the model's default) */
  int steps;
  double guidance;
  int steps_given, guidance_given; /* set by the caller (else the model's defaults may apply) */
  double strength;
  uint64_t seed;
  int seed_random;         /* SF_PARAM_SEED was SF_SEED_RANDOM: draw one */
  int batch_count;
  unsigned decoder;        /* 0: the VAE decoder if loaded, else TAESD */
  int clip_skip;
  int a1111_syntax;        /* SF_PARAM_PROMPT_SYNTAX == SF_PROMPT_SYNTAX_A1111 */
  const char *prompt;      /* NULL: unset */
  const char *negative;    /* NULL: unset ("" then) */
  const float *prompt_embeds, *negative_embeds, *latents;
  size_t n_prompt_embeds, n_negative_embeds, n_latents;
  const uint8_t *init_rgb; /* NULL: text-to-image */
  size_t init_width, init_height;
  sf_sched_request sched;
} sf_request;

/* Scheduler overrides only (SF_PARAM_SAMPLER is not among them: sf_schedule_create takes the
 * sampler as an argument). params may be NULL. */
sf_status sf_request_sched_from_params(const sf_params *params, sf_sched_request *out, sf_diag *d);
/* Everything a generation reads; the prompt may be missing (estimates). params may be NULL (all
 * defaults). */
sf_status sf_request_from_params(const sf_params *params, sf_request *out, sf_diag *d);
/* The same for a generation, which needs a prompt (text or embeddings). */
sf_status sf_request_for_generation(const sf_params *params, sf_request *out, sf_diag *d);

#endif
