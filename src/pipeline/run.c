#include "pipeline/run.h"

#include <stdlib.h>

#include "pipeline/pipeline.h"

static void run_free(sf_run *r) {
  if (r == NULL) return;
  for (int i = 0; i < SF_SLOT_COUNT; i++) sf_plan_destroy(r->plans[i]);
  sf_workspace_release(&r->ws);
  free(r->guidance_embed);
  free(r);
}

static sf_run *run_new(sf_pipeline *p) {
  sf_run *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->p = p;
  atomic_init(&r->cancel, 0);
  atomic_init(&r->ws_bytes, 0);
  for (int i = 0; i < SF_SLOT_COUNT; i++)
    if ((r->plans[i] = sf_plan_create()) == NULL) {
      run_free(r);
      return NULL;
    }
  return r;
}

sf_status sf_run_acquire(sf_pipeline *p, sf_run **out, sf_diag *d) {
  *out = NULL;
  pthread_mutex_lock(&p->runs_lock);
  sf_run *r = p->idle_run;
  p->idle_run = NULL;
  pthread_mutex_unlock(&p->runs_lock);
  if (r == NULL && (r = run_new(p)) == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory for a run state");
  atomic_store(&r->cancel, 0);
  pthread_mutex_lock(&p->runs_lock);
  r->prev = NULL;
  r->next = p->active_runs;
  if (p->active_runs) p->active_runs->prev = r;
  p->active_runs = r;
  pthread_mutex_unlock(&p->runs_lock);
  *out = r;
  return SF_OK;
}

void sf_run_release(sf_run *r) {
  if (r == NULL) return;
  sf_pipeline *p = r->p;
  sf_run *spare = NULL;
  pthread_mutex_lock(&p->runs_lock);
  if (r->prev) r->prev->next = r->next;
  else p->active_runs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  if (p->idle_run == NULL) p->idle_run = r;
  else spare = r;
  pthread_mutex_unlock(&p->runs_lock);
  run_free(spare);
}

void sf_run_cancel_all(sf_pipeline *p) {
  pthread_mutex_lock(&p->runs_lock);
  for (sf_run *r = p->active_runs; r != NULL; r = r->next) atomic_store(&r->cancel, 1);
  pthread_mutex_unlock(&p->runs_lock);
}

void sf_run_free_idle(sf_pipeline *p) {
  pthread_mutex_lock(&p->runs_lock);
  sf_run *r = p->idle_run;
  p->idle_run = NULL;
  pthread_mutex_unlock(&p->runs_lock);
  run_free(r);
}

size_t sf_run_workspace_bytes(sf_pipeline *p) {
  size_t total = 0;
  pthread_mutex_lock(&p->runs_lock);
  for (sf_run *r = p->active_runs; r != NULL; r = r->next) total += atomic_load(&r->ws_bytes);
  if (p->idle_run) total += atomic_load(&p->idle_run->ws_bytes);
  pthread_mutex_unlock(&p->runs_lock);
  return total;
}

size_t sf_run_count_active(sf_pipeline *p) {
  size_t n = 0;
  pthread_mutex_lock(&p->runs_lock);
  for (sf_run *r = p->active_runs; r != NULL; r = r->next) n++;
  pthread_mutex_unlock(&p->runs_lock);
  return n;
}
