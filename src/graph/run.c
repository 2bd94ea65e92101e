/* Running a prepared plan over a run state's workspace. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "graph/graph_internal.h"

#define WORKSPACE_ALIGN 64

sf_status sf_workspace_reserve(sf_workspace *w, size_t bytes, sf_diag *d) {
  if (bytes <= w->cap && w->base != NULL) return SF_OK;
  /* The old contents are not needed: free first, so the peak is the new size only. */
  free(w->base);
  w->base = NULL;
  w->cap = 0;
  void *p = NULL;
  if (posix_memalign(&p, WORKSPACE_ALIGN, bytes ? bytes : WORKSPACE_ALIGN) != 0)
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "cannot allocate a %.1f MiB activation workspace",
                       (double)bytes / 1048576.0);
  w->base = p;
  w->cap = bytes;
  return SF_OK;
}

void sf_workspace_drop_pages(sf_workspace *w) {
  if (w == NULL || w->base == NULL) return;
  const long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0) return;
  /* only whole pages inside the block: the allocator's own words around it stay untouched */
  const uintptr_t page = (uintptr_t)ps, start = ((uintptr_t)w->base + page - 1) & ~(page - 1),
                  end = ((uintptr_t)w->base + w->cap) & ~(page - 1);
  if (end > start) (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

void sf_workspace_release(sf_workspace *w) {
  if (w == NULL) return;
  free(w->base);
  w->base = NULL;
  w->cap = 0;
}

static sf_status run_nodes(const sf_graph *g, const sf_plan *pl, const sf_exec *ex, sf_diag *d) {
  for (size_t i = 0; i < g->n_nodes; i++) {
    if (ex->cancel != NULL && atomic_load_explicit(ex->cancel, memory_order_relaxed))
      return sf_diag_set(d, SF_ERR_CANCELLED, "cancelled");
    sf_status s = sf_node_run(g, pl, ex->ws->base, i, ex->pool, d);
    if (s != SF_OK) return s;
  }
  return SF_OK;
}

sf_status sf_graph_execute(sf_graph *g, const sf_plan *pl, const sf_exec *ex, sf_diag *d) {
  if (pl == NULL || pl->serial != g->serial) return sf_diag_set(d, SF_ERR_INTERNAL, "%s: run before plan", g->name);
  if (g->dry) return sf_diag_set(d, SF_ERR_BAD_STATE, "%s: built for inspection only: it has no weights", g->name);
  if (ex->ws == NULL || ex->ws->base == NULL || ex->ws->cap < pl->arena_bytes)
    return sf_diag_set(d, SF_ERR_INTERNAL, "%s: the workspace does not hold the plan", g->name);
  if (sf_pool_threads(ex->pool) != pl->threads)
    return sf_diag_set(d, SF_ERR_INTERNAL, "%s: planned for %zu threads, run with %zu", g->name, pl->threads,
                       sf_pool_threads(ex->pool));
  if (g->n_xnn == 0) return run_nodes(g, pl, ex, d);
  /* XNNPACK operators keep the pointers of their last setup: one run at a time binds them to
   * its own workspace. */
  pthread_mutex_lock(&g->xnn_lock);
  sf_status s = SF_OK;
  for (size_t i = 0; s == SF_OK && i < g->n_nodes; i++) {
    sf_node *n = &g->nodes[i];
    if (n->xop != NULL || n->n_panels > 0) s = sf_xnn_setup(g, pl, ex->ws->base, n, ex->pool, d);
  }
  if (s == SF_OK) s = run_nodes(g, pl, ex, d);
  pthread_mutex_unlock(&g->xnn_lock);
  return s;
}
