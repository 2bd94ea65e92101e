/* Builders of the normalisation nodes (group norm, layer norm) with their affine parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"

/* The affine parameters (and the name) of a norm into tmp: fetched copies, or from a pack source
 * in place. */
static int fetch_affine(sf_graph *g, sf_wsrc *ws, const char *prefix, size_t c, sf_node *tmp) {
  char name[256];
  int64_t shape[1] = {(int64_t)c};
  const int pack = sf_wsrc_is_pack(ws);
  snprintf(name, sizeof name, "%s.weight", prefix);
  tmp->gamma = pack ? sf_wsrc_pack_tensor(ws, name, 1, shape, 0) : sf_wsrc_fetch(ws, name, 1, shape, SF_INIT_ONES, c);
  snprintf(name, sizeof name, "%s.bias", prefix);
  tmp->beta = pack ? sf_wsrc_pack_tensor(ws, name, 1, shape, 0) : sf_wsrc_fetch(ws, name, 1, shape, SF_INIT_ZEROS, c);
  tmp->params_external = pack;
  tmp->name = strdup(prefix);
  if (tmp->gamma && tmp->beta && tmp->name) return 1;
  sf_node_release(tmp);
  sf_diag e = {0};
  sf_wsrc_status(ws, 0, &e);
  if (e.status != SF_OK) sf_graph_fail(g, e.status, "%s", e.msg);
  else sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory adding %s", prefix);
  return 0;
}

sf_vid sf_g_groupnorm(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t groups, float eps, int silu) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t c = sf_graph_channels(g, x);
  if (groups == 0 || c % groups != 0) {
    sf_graph_fail(g, SF_ERR_BAD_MODEL, "%s: %zu channels are not divisible into %zu groups", prefix, c, groups);
    return -1;
  }
  sf_node tmp = {0};
  if (!fetch_affine(g, ws, prefix, c, &tmp)) return -1;
  sf_node *n = sf_graph_add_node(g, SF_OP_GROUPNORM, &x, 1, c);
  if (n == NULL) {
    sf_node_release(&tmp);
    return -1;
  }
  n->gamma = tmp.gamma;
  n->beta = tmp.beta;
  n->params_external = tmp.params_external;
  n->name = tmp.name;
  n->p.gn.groups = groups;
  n->p.gn.eps = eps;
  n->p.gn.silu = silu;
  g->weights_bytes += 2 * c * sizeof(float);
  return n->out;
}

sf_vid sf_g_layernorm(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, float eps) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t c = sf_graph_channels(g, x);
  sf_node tmp = {0};
  if (!fetch_affine(g, ws, prefix, c, &tmp)) return -1;
  sf_node *n = sf_graph_add_node(g, SF_OP_LAYERNORM, &x, 1, c);
  if (n == NULL) {
    sf_node_release(&tmp);
    return -1;
  }
  n->gamma = tmp.gamma;
  n->beta = tmp.beta;
  n->params_external = tmp.params_external;
  n->name = tmp.name;
  n->p.ln.eps = eps;
  g->weights_bytes += 2 * c * sizeof(float);
  return n->out;
}
