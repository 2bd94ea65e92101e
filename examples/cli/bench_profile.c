/* `--profile`: where a network's time goes. Re-runs the graph the last call planned node by
 * node (the plan's order and buffers, in its run state's workspace) and groups the time by
 * operator and shape. (Graphs on XNNPACK operators are skipped: their setup is per run.) */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "graph/graph_internal.h"
#include "pipeline/engine.h"

typedef struct prof_key {
  char key[80];
  double seconds, macs;
  size_t count;
} prof_key;

static int by_time(const void *a, const void *b) {
  double x = ((const prof_key *)a)->seconds, y = ((const prof_key *)b)->seconds;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void node_key(const sf_plan *pl, const sf_node *n, char *key, size_t cap, double *macs) {
  static const char *names[] = {"?",      "conv",       "linear",     "groupnorm", "layernorm", "act",      "geglu",
                                "add",    "scale",      "tanh_scale", "upsample2x", "concat",   "attention"};
  sf_shape a = pl->shapes[n->in[0]], o = pl->shapes[n->out];
  const char *name = (size_t)n->op < sizeof names / sizeof names[0] ? names[n->op] : "?";
  *macs = 0;
  switch (n->op) {
    case SF_OP_CONV2D:
      *macs = (double)sf_shape_numel(o) * (double)a.c * (double)(n->p.conv.kernel * n->p.conv.kernel);
      snprintf(key, cap, "conv%zux%zu/s%zu %zux%zux%zu->%zu%s", n->p.conv.kernel, n->p.conv.kernel, n->p.conv.stride,
               a.h, a.w, a.c, o.c, n->n_panels ? " (panels)" : "");
      break;
    case SF_OP_LINEAR:
      *macs = (double)sf_shape_numel(o) * (double)a.c;
      snprintf(key, cap, "linear %zux%zu->%zu%s", a.n * a.h * a.w, a.c, o.c, n->n_panels ? " (panels)" : "");
      break;
    case SF_OP_ATTENTION: {
      sf_shape kv = pl->shapes[n->in[1]];
      *macs = 2.0 * (double)(o.n * o.h * o.w) * (double)(kv.h * kv.w) * (double)o.c;
      snprintf(key, cap, "attention %zux%zu x%zu", o.h * o.w, kv.h * kv.w, o.c);
      break;
    }
    default:
      snprintf(key, cap, "%s %zux%zux%zu", name, a.h, a.w, a.c);
      break;
  }
}

void bench_profile_graph(FILE *f, sf_graph *g, const sf_plan *pl, const sf_exec *ex, int runs) {
  if (g == NULL || pl == NULL || pl->serial != g->serial || g->n_xnn > 0) return;
  prof_key *keys = calloc(g->n_nodes, sizeof *keys);
  if (keys == NULL) return;
  size_t n_keys = 0;
  double total = 0;
  for (size_t i = 0; i < g->n_nodes; i++) {
    char key[80];
    double macs = 0, best = 0;
    node_key(pl, &g->nodes[i], key, sizeof key, &macs);
    for (int r = 0; r < runs; r++) {
      sf_diag d = {0};
      double t0 = bench_now();
      sf_node_run(g, pl, ex->ws->base, i, ex->pool, &d);
      double dt = bench_now() - t0;
      if (r == 0 || dt < best) best = dt;
    }
    size_t k = 0;
    while (k < n_keys && strcmp(keys[k].key, key) != 0) k++;
    if (k == n_keys) snprintf(keys[n_keys++].key, sizeof keys[0].key, "%s", key);
    keys[k].seconds += best;
    keys[k].macs += macs;
    keys[k].count++;
    total += best;
  }
  qsort(keys, n_keys, sizeof *keys, by_time);
  fprintf(f, "\nprofile of %s (best of %d per node; sum %.1f ms)\n", g->name, runs, total * 1e3);
  fprintf(f, "%-48s %5s %10s %7s %10s\n", "node", "count", "ms", "share", "GF/s");
  for (size_t k = 0; k < n_keys && k < 30; k++) {
    fprintf(f, "%-48s %5zu %10.2f %6.1f%%", keys[k].key, keys[k].count, keys[k].seconds * 1e3,
            100.0 * keys[k].seconds / total);
    if (keys[k].macs > 0) fprintf(f, " %10.1f", 2.0 * keys[k].macs / keys[k].seconds * 1e-9);
    fprintf(f, "\n");
  }
  free(keys);
}

const sf_plan *bench_idle_plan(sf_pipeline *p, int slot) {
  sf_run *r = sf_engine_idle_run(p);
  return r && slot >= 0 && slot < SF_SLOT_COUNT ? r->plans[slot] : NULL;
}

double bench_plan_bytes(sf_pipeline *p, int slot) { return (double)sf_plan_arena_bytes(bench_idle_plan(p, slot)); }

double bench_plan_macs(sf_pipeline *p, int slot, const sf_graph *g, int attention_only) {
  if (g == NULL) return 0.0;
  sf_graph_stats st;
  sf_graph_get_stats(g, bench_idle_plan(p, slot), &st);
  return attention_only ? st.macs_attention : st.macs_dense + st.macs_attention;
}

void bench_profile_pipeline(FILE *f, sf_pipeline *p, int slot, sf_graph *g, int runs) {
  sf_run *r = sf_engine_idle_run(p);
  if (r == NULL) return;
  sf_exec ex = {.pool = sf_ctx_pool_acquire(p->ctx), .cancel = NULL, .ws = &r->ws};
  bench_profile_graph(f, g, r->plans[slot], &ex, runs);
  sf_ctx_pool_release(p->ctx);
}
