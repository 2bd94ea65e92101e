/* Multi-head scaled-dot-product attention, float32 (diffusers AttnProcessor / CLIP eager
 * attention): out = softmax(scale * q·kᵀ [+ causal mask]) · v per (batch, head).
 *
 * Layout: q is [batch, q_len, heads*head_dim], k and v are [batch, kv_len, heads*head_dim],
 * out is [batch, q_len, heads*head_dim]; head h occupies columns h*head_dim .. +head_dim-1.
 * Token t of batch b starts at ptr + (b*len + t)*stride, so q/k/v may be column slices of one
 * fused projection output. Strides are in floats and must be >= heads*head_dim.
 *
 * The kernel never materialises the q_len × kv_len score matrix: each task owns a block of
 * queries of one (batch, head) and streams key blocks through an online softmax, so the
 * scratch is O(threads × block × (key_block + head_dim)). Each output row is computed by
 * exactly one task in a fixed order, so results are bit-identical for any thread count. */
#ifndef SF_GRAPH_OPS_ATTENTION_H
#define SF_GRAPH_OPS_ATTENTION_H

#include <stddef.h>

#include <pthreadpool.h>

typedef struct sf_attention_desc {
  size_t batch, heads, head_dim, q_len, kv_len;
  size_t q_stride, k_stride, v_stride, out_stride; /* floats between consecutive tokens */
  float scale;        /* usually 1/sqrt(head_dim) */
  int causal;         /* query i attends keys 0..i only (CLIP text encoder) */
  int force_portable; /* use the plain-C path even where a SIMD path runs (tests) */
} sf_attention_desc;

/* Bytes of scratch sf_attention_f32 needs when run on a pool of num_threads threads
 * (pass 1 for a NULL pool). The scratch needs no particular alignment. */
size_t sf_attention_scratch_size(const sf_attention_desc *d, size_t num_threads);

/* Computes the attention. Preconditions (the graph validates shapes before calling):
 * kv_len >= 1 when q_len >= 1, head_dim >= 1, strides >= heads*head_dim, out does not overlap
 * q/k/v, and scratch holds sf_attention_scratch_size(d, T) bytes where
 * T = pthreadpool_get_threads_count(pool) (1 when pool is NULL). */
void sf_attention_f32(pthreadpool_t pool, const sf_attention_desc *d, const float *q,
                      const float *k, const float *v, float *out, void *scratch);

/* 4*B*H*Tq*Tk*D: the multiply-adds of q·kᵀ and P·v counted as two FLOPs each (causal
 * masking not discounted). */
double sf_attention_flops(const sf_attention_desc *d);

/* Name of the path this CPU runs ("avx512", "avx2" or "portable", chosen at run time), for
 * benchmarks/logs. */
const char *sf_attention_isa(void);

#endif
