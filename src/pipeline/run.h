/* Run states: what one run on a loaded pipeline owns (whisper.cpp's whisper_state): its cancel
 * token, one plan per network graph, and one activation workspace shared by those graphs (the
 * text encoder, UNet and decoders never run at once within a run, so the workspace is sized
 * for the largest plan, not for their sum).
 *
 * A run is a job (from sf_job_start to sf_job_destroy) or one building-block call. Runs are
 * registered with their pipeline while in flight, so sf_pipeline_cancel reaches exactly the
 * runs in flight at the time; a new run starts with a clear token. The pipeline keeps one
 * idle run state between runs, so consecutive runs reuse its plans and workspace and nothing
 * is allocated per step; concurrent runs get states of their own. */
#ifndef SF_PIPELINE_RUN_H
#define SF_PIPELINE_RUN_H

#include <stdatomic.h>

#include "graph/graph.h"
#include "snapfusion.h"

struct sf_pipeline;

typedef enum sf_slot {
  SF_SLOT_TEXT = 0,
  SF_SLOT_UNET,
  SF_SLOT_VAE_DECODER,
  SF_SLOT_VAE_ENCODER,
  SF_SLOT_TAESD_DECODER,
  SF_SLOT_TAESD_ENCODER,
  SF_SLOT_COUNT
} sf_slot;

typedef struct sf_run {
  struct sf_pipeline *p;
  atomic_int cancel;
  sf_workspace ws;
  sf_plan *plans[SF_SLOT_COUNT];
  _Atomic size_t ws_bytes;    /* ws.cap, published for SF_INFO_ARENA_BYTES */
  float *guidance_embed;      /* an LCM UNet's timestep_cond rows (engine.c), grown once, kept */
  size_t guidance_cap;        /* floats in guidance_embed */
  struct sf_run *prev, *next; /* the pipeline's list of runs in flight */
} sf_run;

/* A run state for a new run on p (the idle one, or a new one), registered as in flight with a
 * clear cancel token. */
sf_status sf_run_acquire(struct sf_pipeline *p, sf_run **out, sf_diag *d);
/* Ends the run: unregisters it and keeps it as p's idle state (or frees it). NULL is a no-op. */
void sf_run_release(sf_run *r);
/* Sets the cancel token of every run of p in flight now. */
void sf_run_cancel_all(struct sf_pipeline *p);
/* Frees p's idle run state (at pipeline destroy: no run may be in flight). */
void sf_run_free_idle(struct sf_pipeline *p);
/* Workspace bytes held by p's run states (in flight and idle). */
size_t sf_run_workspace_bytes(struct sf_pipeline *p);
size_t sf_run_count_active(struct sf_pipeline *p);

#endif
