/* The fixture checker's plumbing, shared by the per-component runners (check_*.c). */
#ifndef SF_CLI_CHECK_H
#define SF_CLI_CHECK_H

#include <stdarg.h>
#include <stddef.h>

#include <snapfusion.h>

#include "core/sha256.h"
#include "io/json.h"
#include "io/safetensors.h"

typedef enum { CHECK_PASS = 0, CHECK_FAIL, CHECK_SKIP } check_verdict;

typedef struct check_result {
  check_verdict verdict;
  double max_abs, worst_ratio; /* over every compared output */
  size_t outputs;              /* outputs compared */
  char reason[600];
  sf_sha256 digest;            /* of every computed output's raw bytes, in comparison order */
  double rel_l2_ref;           /* worst relative L2 distance of an output to its reference */
  double rel_l2_base;          /* --weights: worst relative L2 distance to the f32 weights' output */
  int nonfinite;               /* an output held NaN or infinity */
} check_result;

typedef struct check_cached_pipe {
  char dir[512];
  char variant[32];
  int weights;
  char loras[2048];
  sf_pipeline *pipe;
} check_cached_pipe;

typedef struct check_state {
  const char *set_dir;
  const sf_json *manifest; /* the set's manifest.json root */
  sf_context *ctx;
  check_cached_pipe pipes[4];
  size_t n_pipes;
  int weights;        /* sf_weight_type the pipelines are loaded with */
  /* Set by a runner around the ones it reuses (check_lora.c): the model folder the case runs on
   * instead of the one its "model" names, and the SF_PARAM_LORAS its pipelines are loaded with. */
  const char *model_dir;
  const char *loras;
  int backend;        /* SF_PARAM_GEMM_BACKEND the pipelines are loaded with (--backend) */
  /* --weights: the outputs of the f32 run of the case, captured (capture) then compared. */
  int capture;
  float **base;
  size_t *base_n, n_base, cap_base, replay;
} check_state;

typedef struct check_run {
  check_state *state;
  const sf_json *c;      /* the manifest entry */
  sf_safetensors *file;  /* the case's tensors, or NULL */
} check_run;

typedef struct check_runner {
  const char *component;
  void (*run)(check_run *run, check_result *r); /* NULL: not supported yet */
} check_runner;

extern const check_runner check_runners[]; /* terminated by {NULL, NULL} */

typedef struct check_kind {
  const char *prefix;                           /* the case names' first segment */
  void (*run)(check_run *run, check_result *r); /* NULL: not supported (skipped) */
} check_kind;

void check_result_init(check_result *r);
void check_skip(check_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check_fail(check_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check_api_fail(check_result *r, const char *what, sf_status s, const sf_context *ctx);
/* malloc'd f32 copy of a case tensor ("in.sample"); NULL (and r failed) if absent. */
float *check_tensor(check_run *run, check_result *r, const char *key, size_t *count);
const sf_st_tensor *check_tensor_info(check_run *run, check_result *r, const char *key);
/* Compares got with out.<output> under the case's tolerance for <output>. */
void check_compare(check_run *run, check_result *r, const char *output, const float *got, size_t n);
/* Adds computed values to the case's digest (check_compare does it for its outputs). */
void check_digest(check_result *r, const void *data, size_t bytes);
void check_compare_f64(check_run *run, check_result *r, const char *output, const double *got, size_t n);
/* The case's tolerance entry for output: its own, else the longest matching "*suffix" one, else "*". */
const sf_json *check_tolerance(check_run *run, const char *output);
/* malloc'd JSON text of a scheduler config, with "_class_name": cls first when cls is not NULL. */
char *check_config_text(const sf_json *config, const char *cls);
/* Whether rel_path (in the set) is a single-file checkpoint (a .safetensors holding the
 * original LDM layout's model.diffusion_model.* / first_stage_model.* / cond_stage_model.*). */
int check_is_single_file(const check_state *st, const char *rel_path);
/* A pipeline for a folder of the set (relative path), or a single-file checkpoint (loaded with
 * the config folder the manifest's models name after it, see check.c), loaded once per run. */
sf_pipeline *check_pipeline(check_run *run, check_result *r, const char *rel_dir, const char *variant);

/* Runners that live in their own files. */
void check_run_pipeline(check_run *run, check_result *r);
void check_run_scheduler(check_run *run, check_result *r);
/* The LCM cases (lcm/...): guidance embedding, UNet, scheduler tables and steps, pipelines. */
void check_run_lcm(check_run *run, check_result *r);
/* The LoRA cases ("lora/..."): the case's base folder loaded with its LoRAs (check_lora.c). */
void check_run_lora(check_run *run, check_result *r);

#endif
