/* The CLIP text encoder of SD-1.x (transformers' CLIPTextModel) on the graph.
 *
 * Token + position embeddings are gathered on the host into the graph input [n,1,T,D];
 * the graph holds the pre-LN transformer layers (fused q/k/v projection with biases,
 * causal multi-head attention, out projection, fc1 -> quick_gelu|gelu -> fc2, residuals).
 * Every layer's output is a graph output, so clip_skip picks one without another graph,
 * and the final LayerNorm is applied to the chosen one on the host side of the graph.
 *
 * A built model is immutable: any number of run states may run it at once. */
#ifndef SF_MODELS_CLIP_TEXT_H
#define SF_MODELS_CLIP_TEXT_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "graph/graph.h"
#include "graph/wsrc.h"
#include "io/json.h"

struct sf_weights;

typedef struct sf_clip_text_config {
  size_t hidden;        /* hidden_size (required) */
  size_t layers;        /* num_hidden_layers (required) */
  size_t heads;         /* num_attention_heads (required; divides hidden) */
  size_t intermediate;  /* intermediate_size (required) */
  size_t max_positions; /* max_position_embeddings (default 77) */
  size_t vocab;         /* vocab_size (default 49408) */
  sf_act act;           /* hidden_act: quick_gelu (default) -> SF_ACT_QUICK_GELU, gelu -> SF_ACT_GELU */
  float ln_eps;         /* layer_norm_eps (default 1e-5) */
  int64_t eos_token_id; /* pooled-output rule only: 2 = legacy argmax(ids) (default 49407) */
} sf_clip_text_config;

/* Reads a transformers CLIPTextConfig (text_encoder/config.json). Missing architecture keys
 * are SF_ERR_BAD_MODEL naming the key; a hidden_act other than quick_gelu/gelu, a
 * CLIPTextModelWithProjection or a model_type other than clip_text_model is
 * SF_ERR_UNSUPPORTED. Keys without effect on inference (projection_dim, dropout, init,
 * bos/pad ids, torch_dtype) are ignored. */
sf_status sf_clip_text_config_parse(const sf_json *cfg, sf_clip_text_config *out, sf_diag *d);

typedef struct sf_clip_text sf_clip_text;

/* Builds and packs the network from ws (checkpoint names `text_model.*`, checked: a missing,
 * misshaped or unused tensor is SF_ERR_BAD_MODEL naming it). A checkpoint carrying
 * `text_projection.weight` (CLIPTextModelWithProjection) is refused as SF_ERR_UNSUPPORTED.
 * NULL on failure with d set. */
sf_clip_text *sf_clip_text_build(const sf_clip_text_config *c, sf_wsrc *ws, sf_diag *d);

/* transformers checkpoints saved before v4.31 carry `text_model.embeddings.position_ids`, a
 * non-parameter int64 buffer (arange) that transformers 4.31+ drops on load. Marks it as
 * consumed in w (when present) so the unused-tensor check of sf_clip_text_build accepts it;
 * call before building from a wsrc over w. */
void sf_clip_text_accept_buffers(struct sf_weights *w);

/* ids [batch, tokens] (1 <= tokens <= max_positions; 0 <= id < vocab, else
 * SF_ERR_INVALID_ARGUMENT); out [batch, tokens, hidden] = final_layer_norm(hidden state after
 * layers - clip_skip layers), 0 <= clip_skip <= layers (0 = last_hidden_state; diffusers'
 * clip_skip=1 = the penultimate layer). Runs in the caller's run state (ex, and pl: the
 * state's plan of this model's graph, replanned only when batch, tokens or threads change). */
sf_status sf_clip_text_run(sf_clip_text *m, const sf_exec *ex, sf_plan *pl, const int32_t *ids, size_t batch,
                           size_t tokens, int clip_skip, float *out, sf_diag *d);
/* The same, where ids vocab .. vocab+n_extra-1 take their input embedding from the rows of
 * extra ([n_extra, hidden], e.g. textual-inversion vectors) instead of the token table. */
sf_status sf_clip_text_run_ext(sf_clip_text *m, const sf_exec *ex, sf_plan *pl, const int32_t *ids, size_t batch,
                               size_t tokens, const float *extra, size_t n_extra, int clip_skip, float *out,
                               sf_diag *d);

/* Plans pl as sf_clip_text_run would for batch x tokens, without a workspace (estimates). */
sf_status sf_clip_text_plan(const sf_clip_text *m, sf_plan *pl, size_t batch, size_t tokens, size_t threads,
                            sf_diag *d);

/* transformers' pooler_output from a last_hidden_state [batch, tokens, hidden] (clip_skip 0)
 * of the same ids: the row at argmax(ids) when eos_token_id == 2 (legacy configs such as
 * SD-1.5's), else at the first id == eos_token_id (row 0 if none). pooled [batch, hidden].
 * Not used by SD-1.x. */
sf_status sf_clip_text_pooled(const sf_clip_text *m, const int32_t *ids, size_t batch, size_t tokens,
                              const float *last_hidden, float *pooled, sf_diag *d);

size_t sf_clip_text_hidden(const sf_clip_text *m);
/* Bytes of the weights held outside the graph (token and position embeddings, final norm). */
size_t sf_clip_text_extra_bytes(const sf_clip_text *m);
const sf_clip_text_config *sf_clip_text_get_config(const sf_clip_text *m);
void sf_clip_text_destroy(sf_clip_text *m);
/* For statistics (sf_graph_get_stats) and plan checks; the model keeps ownership. */
sf_graph *sf_clip_text_graph(const sf_clip_text *m);
/* Every parameter as pack blobs (graph.h, sf_graph_params), in build order: the token and
 * position embeddings, the layers, the final norm. */
sf_status sf_clip_text_params(const sf_clip_text *m, sf_graph_param_fn fn, void *user, sf_diag *d);

#endif
