/* Per-op scratch sizes and the run dispatch of every node kind; the kernels themselves are in
 * graph/ops/, the GEMM and XNNPACK node runs in igemm_node.c and xnn_node.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/graph_internal.h"
#include "graph/ops/attention.h"
#include "graph/ops/kernels.h"
#include "graph/ops/pointwise.h"

static sf_attention_desc attention_desc(const sf_plan *pl, const sf_node *n) {
  sf_shape q = pl->shapes[n->in[0]], kv = pl->shapes[n->in[1]];
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

size_t sf_node_scratch_bytes(const sf_graph *g, const sf_plan *pl, const sf_node *n, size_t threads) {
  (void)g;
  if (n->op == SF_OP_ATTENTION) {
    sf_attention_desc a = attention_desc(pl, n);
    return sf_attention_scratch_size(&a, threads);
  }
  if (n->op == SF_OP_GROUPNORM) {
    sf_shape s = pl->shapes[n->in[0]];
    return sf_groupnorm_scratch_size(s.n, s.h * s.w, s.c);
  }
  return 0;
}

sf_status sf_node_run(const sf_graph *g, const sf_plan *pl, void *arena, size_t index, pthreadpool_t pool,
                      sf_diag *d) {
  sf_node *n = &g->nodes[index];
  sf_shape a = pl->shapes[n->in[0]];
  sf_shape o = pl->shapes[n->out];
  float *x = sf_node_in(pl, arena, n, 0);
  float *y = sf_node_out(pl, arena, n);
  void *scratch = (char *)arena + pl->scratch_offsets[index];
  size_t count = sf_shape_numel(o);
  switch (n->op) {
    case SF_OP_CONV2D:
    case SF_OP_LINEAR:
      return n->ig ? sf_igemm_node_run(pl, arena, n, pool) : sf_xnn_run(g, n, pool, d);
    case SF_OP_GROUPNORM:
      sf_groupnorm_f32(pool, x, y, a.n, a.h * a.w, a.c, n->p.gn.groups, n->p.gn.eps, n->gamma, n->beta,
                       n->p.gn.silu, scratch);
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
      sf_shape b = pl->shapes[n->in[1]];
      float *bx = sf_node_in(pl, arena, n, 1);
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
      sf_shape b = pl->shapes[n->in[1]];
      sf_concat_channels_f32(pool, x, a.c, sf_node_in(pl, arena, n, 1), b.c, y, a.n * a.h * a.w);
      return SF_OK;
    }
    case SF_OP_ATTENTION: {
      sf_attention_desc ad = attention_desc(pl, n);
      if (sf_attention_scratch_size(&ad, sf_pool_threads(pool)) > pl->scratch_bytes[index])
        return sf_diag_set(d, SF_ERR_INTERNAL, "%s: run with more threads than planned for", g->name);
      float *kv = sf_node_in(pl, arena, n, 1);
      sf_attention_f32(pool, &ad, x + n->p.attn.q_off, kv + n->p.attn.k_off, kv + n->p.attn.v_off, y, scratch);
      return SF_OK;
    }
  }
  return sf_diag_set(d, SF_ERR_INTERNAL, "%s: unknown op %d", g->name, (int)n->op);
}
