/* Memory estimates (sf_pipeline_estimate_memory): the peak a generation will reach, worked out
 * from dry builds of the networks and plans at the generation's shapes, before anything is
 * packed. */
#ifndef SF_PIPELINE_ESTIMATE_H
#define SF_PIPELINE_ESTIMATE_H

#include <stdint.h>

#include "pipeline/pipeline.h"
#include "pipeline/request.h"

typedef struct sf_memory_figures {
  uint64_t peak;          /* of the process */
  uint64_t weights;       /* resident at the peak */
  uint64_t workspace;     /* resident at the peak */
  uint64_t other;         /* peak - weights - workspace */
  uint64_t weights_total; /* every network's packed weights */
  uint64_t workspace_run; /* the generation's largest plan */
} sf_memory_figures;

/* For a generation of rq on p as loaded (weight policy, low-memory mode), with threads threads. */
sf_status sf_pipeline_estimate(sf_pipeline *p, const sf_request *rq, size_t threads, sf_memory_figures *out,
                               sf_diag *d);

#endif
