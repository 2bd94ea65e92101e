/* `snapfusion bench`: shared options, timing and reporting of the benchmark subcommands. */
#ifndef SF_CLI_BENCH_H
#define SF_CLI_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include <pthreadpool.h>

#include "cli.h"
#include "graph/graph.h"

typedef struct bench_opts {
  int json;
  long long threads;    /* 0: one per core */
  long long repeat;     /* timed runs after one warm-up; 0: the subcommand's default */
  long long size;       /* image side in pixels */
  long long batch;
  long long steps;      /* txt2img: denoising steps */
  double cfg_scale;     /* txt2img: classifier-free guidance */
  const char *config;   /* pipeline config folder */
  const char *tokenizer;
  const char *taesd;    /* TAESD config.json or its folder */
  double probe_seconds; /* duration of each machine probe */
  int profile;          /* networks: per-node time breakdown after the timed runs */
  const char *only;     /* ops: only the rows whose name or shape contains this */
  int weights;          /* sf_weight_type for the networks (random weights: default f32) */
  int low_memory;       /* txt2img: SF_PARAM_LOW_MEMORY */
  const char *pack;     /* txt2img: SF_PARAM_PACK_PATH (weights mapped from a pack file) */
} bench_opts;

/* One timed measurement: a single operator or a whole network call. */
typedef struct bench_row {
  char name[48];
  char shape[64];
  double median_s, min_s;
  double flops;       /* 0 for memory-bound rows */
  double bytes;       /* memory-bound rows: bytes read + written; tokenizer: input bytes */
  double tokens;      /* tokenizer rows: tokens produced (no FLOPs, no ratio) */
  double ratio;       /* of the FMA peak (or of the stream bandwidth when bytes > 0) */
  double goal;        /* minimum ratio asked for; 0: none */
  double direct_gflops; /* the same problem as one plain XNNPACK operator; 0: n/a */
  /* networks only */
  double macs, attention_macs;
  double arena_bytes, weights_bytes, peak_rss_bytes, rss_budget_bytes, load_s;
  double first_step_s; /* txt2img: from the start of the load to the end of the first UNet step */
  /* sf_pipeline_estimate_memory before the load (txt2img); est_peak 0: none */
  double est_peak, est_weights, est_workspace, est_other;
  int network;
} bench_row;

typedef struct bench_refs {
  double fma_gflops, stream_gbs, fc_best_gflops;
  char fc_best_shape[48];
  int have_stream, have_fc;
} bench_refs;

double bench_now(void);
/* Median and minimum of the n timed runs. */
void bench_stats(double *times, size_t n, double *median, double *min);
double bench_peak_rss_bytes(void);
void bench_fill_random(float *x, size_t n, unsigned seed, float scale);
/* The last component of a folder path ("sd-v1-5" of "../shared/configs/sd-v1-5/"). */
const char *bench_base_name(const char *path);
/* $SNAPFUSION_FIXTURES/public/tokenizer, else ../shared/fixtures/public/tokenizer. */
const char *bench_default_tokenizer(char *buf, size_t cap);

/* Prints the header, the references and the rows (text table or one JSON object). */
void bench_report(FILE *f, const bench_opts *o, const char *command, size_t threads, const bench_refs *refs,
                  const bench_row *rows, size_t n_rows);

/* The subcommands: measure into rows (at most BENCH_MAX_ROWS), ratios filled in by the
 * caller from refs->fma_gflops (probed before). Return 0 or a CLI exit code. */
enum { BENCH_MAX_ROWS = 32 };
typedef int (*bench_fn)(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);
/* Prints the time per node kind and shape of a planned graph (re-runs it node by node in
 * ex's workspace). */
void bench_profile_graph(FILE *f, sf_graph *g, const sf_plan *pl, const sf_exec *ex, int runs);
/* After a call through the public API: the plan of network slot (sf_slot) in the pipeline's
 * idle run state, its workspace bytes, and a run on that state's workspace (for profiles). */
const sf_plan *bench_idle_plan(sf_pipeline *p, int slot);
double bench_plan_bytes(sf_pipeline *p, int slot);
void bench_profile_pipeline(FILE *f, sf_pipeline *p, int slot, sf_graph *g, int runs);
/* MACs (dense + attention) and attention MACs of graph g as planned in p's idle run state. */
double bench_plan_macs(sf_pipeline *p, int slot, const sf_graph *g, int attention_only);

/* Machine probes (bench_probes.c). Register-only FMA throughput over every thread of the pool
 * (or the calling thread), widest vector ISA the CPU has, 2 FLOPs per FMA lane; runs about
 * `seconds`. */
double bench_fma_peak_gflops(pthreadpool_t pool, double seconds);
/* Best-of-repetitions STREAM triad a = b + s*c over three arrays of `bytes` each, counting
 * 3 * bytes moved per repetition; runs about `seconds`. Negative if allocation fails. */
double bench_stream_bandwidth_gbs(pthreadpool_t pool, size_t bytes, double seconds);

int bench_ops(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);
int bench_unet(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);
int bench_vae(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);
int bench_text(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);
int bench_txt2img(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows);

#endif
