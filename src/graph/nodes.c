/* Builders of the normalisation nodes and the per-op dispatch of setup and run. The
 * kernels themselves are in graph/ops/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/graph_internal.h"
#include "graph/ops/attention.h"
#include "graph/ops/kernels.h"
#include "graph/ops/pointwise.h"
#include "graph/wsrc.h"

static int fetch_affine(sf_graph *g, sf_wsrc *ws, const char *prefix, size_t c, sf_node *tmp) {
  char name[256];
  int64_t shape[1] = {(int64_t)c};
  snprintf(name, sizeof name, "%s.weight", prefix);
  tmp->gamma = sf_wsrc_fetch(ws, name, 1, shape, SF_INIT_ONES, c);
  snprintf(name, sizeof name, "%s.bias", prefix);
  tmp->beta = sf_wsrc_fetch(ws, name, 1, shape, SF_INIT_ZEROS, c);
  if (tmp->gamma && tmp->beta) return 1;
  free(tmp->gamma);
  free(tmp->beta);
  sf_diag e = {0};
  sf_wsrc_status(ws, 0, &e);
  sf_graph_fail(g, e.status != SF_OK ? e.status : SF_ERR_OUT_OF_MEMORY, "%s", e.status != SF_OK ? e.msg : prefix);
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
    free(tmp.gamma);
    free(tmp.beta);
    return -1;
  }
  n->gamma = tmp.gamma;
  n->beta = tmp.beta;
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
    free(tmp.gamma);
    free(tmp.beta);
    return -1;
  }
  n->gamma = tmp.gamma;
  n->beta = tmp.beta;
  n->p.ln.eps = eps;
  g->weights_bytes += 2 * c * sizeof(float);
  return n->out;
}

static sf_attention_desc attention_desc(const sf_graph *g, const sf_node *n) {
  sf_shape q = g->values[n->in[0]].shape, kv = g->values[n->in[1]].shape;
  sf_attention_desc a = {0};
  a.batch = q.n;
  a.heads = n->p.attn.heads;
  a.head_dim = n->p.attn.head_dim;
  a.q_len = q.h * q.w;
  a.kv_len = kv.h * kv.w;
  a.q_stride = q.c;
  a.k_stride = kv.c;
  a.v_stride = kv.c;
  a.out_stride = a.heads * a.head_dim;
  a.scale = 1.0f / sqrtf((float)a.head_dim);
  a.causal = n->p.attn.causal;
  return a;
}

static size_t pool_threads(pthreadpool_t pool) {
  return pool ? pthreadpool_get_threads_count(pool) : 1;
}

size_t sf_node_scratch_bytes(const sf_graph *g, const sf_node *n, pthreadpool_t pool) {
  if (n->op == SF_OP_ATTENTION) {
    sf_attention_desc a = attention_desc(g, n);
    return sf_attention_scratch_size(&a, pool_threads(pool));
  }
  if (n->op == SF_OP_GROUPNORM) {
    sf_shape s = g->values[n->in[0]].shape;
    return sf_groupnorm_scratch_size(s.n, s.h * s.w, s.c);
  }
  return 0;
}

sf_status sf_node_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  if (n->ig != NULL) return SF_OK;
  switch (n->op) {
    case SF_OP_CONV2D: return sf_conv2d_setup(g, n, pool, d);
    case SF_OP_LINEAR: return sf_linear_setup(g, n, pool, d);
    default: return SF_OK;
  }
}

sf_status sf_node_run(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  sf_shape a = g->values[n->in[0]].shape;
  sf_shape o = g->values[n->out].shape;
  float *x = sf_node_in(g, n, 0);
  float *y = sf_node_out(g, n);
  size_t count = sf_shape_numel(o);
  switch (n->op) {
    case SF_OP_CONV2D:
    case SF_OP_LINEAR:
      return n->ig ? sf_igemm_node_run(g, n, pool) : sf_xnn_run(g, n, pool, d);
    case SF_OP_GROUPNORM:
      sf_groupnorm_f32(pool, x, y, a.n, a.h * a.w, a.c, n->p.gn.groups, n->p.gn.eps, n->gamma, n->beta,
                       n->p.gn.silu, (char *)g->arena + n->scratch_offset);
      return SF_OK;
    case SF_OP_LAYERNORM:
      sf_layernorm_f32(pool, x, y, a.n * a.h * a.w, a.c, n->p.ln.eps, n->gamma, n->beta);
      return SF_OK;
    case SF_OP_ACT:
      switch (n->p.act) {
        case SF_ACT_SILU: sf_silu_f32(pool, x, y, count); break;
        case SF_ACT_GELU: sf_gelu_erf_f32(pool, x, y, count); break;
        case SF_ACT_QUICK_GELU: sf_quick_gelu_f32(pool, x, y, count); break;
        case SF_ACT_RELU: sf_relu_f32(pool, x, y, count); break;
      }
      return SF_OK;
    case SF_OP_GEGLU:
      sf_geglu_f32(pool, x, y, o.n * o.h * o.w, o.c);
      return SF_OK;
    case SF_OP_ADD: {
      sf_shape b = g->values[n->in[1]].shape;
      float *bx = sf_node_in(g, n, 1);
      if (b.h == a.h && b.w == a.w) sf_add_f32(pool, x, bx, y, count);
      else sf_add_bias_f32(pool, x, bx, y, a.n, a.h * a.w, a.c);
      return SF_OK;
    }
    case SF_OP_SCALE:
      sf_scale_f32(pool, x, y, count, n->p.scale);
      return SF_OK;
    case SF_OP_TANH_SCALE:
      sf_tanh_scale_f32(pool, x, y, count, n->p.scale);
      return SF_OK;
    case SF_OP_UPSAMPLE2X:
      sf_upsample_nearest2x_f32(pool, x, y, a.n, a.h, a.w, a.c);
      return SF_OK;
    case SF_OP_CONCAT: {
      sf_shape b = g->values[n->in[1]].shape;
      sf_concat_channels_f32(pool, x, a.c, sf_node_in(g, n, 1), b.c, y, a.n * a.h * a.w);
      return SF_OK;
    }
    case SF_OP_ATTENTION: {
      sf_attention_desc ad = attention_desc(g, n);
      if (sf_attention_scratch_size(&ad, pool_threads(pool)) > n->scratch_bytes)
        return sf_diag_set(d, SF_ERR_BAD_STATE, "%s: run with more threads than planned for", g->name);
      float *kv = sf_node_in(g, n, 1);
      sf_attention_f32(pool, &ad, x + n->p.attn.q_off, kv + n->p.attn.k_off, kv + n->p.attn.v_off, y,
                       (char *)g->arena + n->scratch_offset);
      return SF_OK;
    }
  }
  return sf_diag_set(d, SF_ERR_INTERNAL, "%s: unknown op %d", g->name, (int)n->op);
}

void sf_node_release(sf_node *n) {
  if (n->xop) xnn_delete_operator(n->xop);
  sf_xnn_release(n);
  if (n->ig) sf_igemm_free(n->ig);
  free(n->ig);
  free(n->gamma);
  free(n->beta);
  n->ig = NULL;
  n->xop = NULL;
  n->gamma = n->beta = NULL;
}
