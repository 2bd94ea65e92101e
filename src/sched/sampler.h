/* The samplers as the public API names them (sf_sampler), mapped once to the scheduler
 * kinds, names and A1111 labels; and the one place that turns a scheduler config plus the
 * caller's overrides into a scheduler configuration, for jobs and sf_schedule_* alike. */
#ifndef SF_SCHED_SAMPLER_H
#define SF_SCHED_SAMPLER_H

#include "sched/scheduler.h"
#include "snapfusion.h"

/* 0 for SF_SAMPLER_DEFAULT or a value that is not a sampler. */
sf_sched_kind sf_sampler_kind(sf_sampler s);
/* "ddim", ...; NULL for SF_SAMPLER_DEFAULT or an unknown value. */
const char *sf_sampler_canonical_name(sf_sampler s);
/* Canonical names (any case) and the spellings other tools use; SF_SAMPLER_DEFAULT if none. */
sf_sampler sf_sampler_parse(const char *name);
/* A1111's sampler label ("DPM++ 2M Karras", "Euler a", ...). */
const char *sf_sched_a1111_name(sf_sched_kind kind, int karras);

/* What a caller asks of the sampler, on top of the scheduler config. */
typedef struct sf_sched_request {
  sf_sampler sampler;             /* SF_SAMPLER_DEFAULT: the config's class */
  sf_prediction prediction;       /* SF_PREDICTION_DEFAULT: the config's */
  sf_timestep_spacing spacing;    /* SF_SPACING_DEFAULT: the config's */
  int karras;                     /* -1: the config's use_karras_sigmas; 0 or 1: forced */
  double eta;                     /* DDIM eta: only 0 */
} sf_sched_request;

void sf_sched_request_default(sf_sched_request *r);

/* SD-1.5's scheduler_config.json as runwayml ships it (PNDMScheduler): what every caller gets
 * when there is no scheduler config (a folder without scheduler/, sf_schedule_create(NULL)). */
extern const char sf_sd15_scheduler_config[];

/* The scheduler configuration for config (a scheduler_config.json object; NULL: SD-1.5's)
 * and the request: with an explicit sampler the file is read as that class's from_config
 * would (its defaults for missing keys); the request's overrides then apply. A config whose
 * class is unknown gives DDIM with out->unknown_class set (the caller says so). */
sf_status sf_sched_config_resolve(const sf_json *config, const sf_sched_request *req, sf_sched_config *out,
                                  sf_diag *d);

#endif
