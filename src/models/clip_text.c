#include "models/clip_text.h"

#include "graph/ops/half.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "graph/ops/kernels.h"
#include "io/model_folder.h"
#include "io/pack.h"

#define POSITION_IDS "text_model.embeddings.position_ids"

struct sf_clip_text {
  sf_clip_text_config cfg;
  sf_graph *g;
  sf_vid input;      /* embeddings [n,1,T,D] */
  sf_vid *layer_out; /* [layers], each a graph output */
  const float *tok_emb;      /* [vocab, D], or NULL when held as tok_emb16 */
  const uint16_t *tok_emb16; /* [vocab, D] as IEEE half: under f16/q8 weights (graph/wsrc.h), or as stored */
  int tok_half;              /* held as half (set also by dry builds, which hold neither) */
  const float *pos_emb;      /* [max_positions, D] */
  const float *final_gamma, *final_beta;
  int external;              /* the tensors above are in a mapped pack (graph/wsrc.h): not freed */
};

/* ---- config ------------------------------------------------------------------------------- */

/* Upper bounds far above any CLIP, so a corrupt config cannot ask for absurd allocations. */
#define MAX_HIDDEN 16384
#define MAX_LAYERS 256
#define MAX_INTERMEDIATE 262144
#define MAX_POSITIONS 65536
#define MAX_VOCAB 4194304

static sf_status get_size(const sf_json *cfg, const char *key, int required, size_t dflt, size_t max, size_t *out,
                          sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL || sf_json_is_null(v)) {
    if (required) return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: missing required key '%s'", key);
    *out = dflt;
    return SF_OK;
  }
  int64_t x;
  if (!sf_json_as_i64(v, &x) || x < 1 || (uint64_t)x > max)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: '%s' must be an integer in [1, %zu]", key, max);
  *out = (size_t)x;
  return SF_OK;
}

sf_status sf_clip_text_config_parse(const sf_json *cfg, sf_clip_text_config *out, sf_diag *d) {
  if (cfg == NULL || cfg->type != SF_JSON_OBJECT)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: not a JSON object");
  sf_clip_text_config c;
  memset(&c, 0, sizeof c);

  const char *model_type = sf_json_as_string(sf_json_get(cfg, "model_type"));
  if (sf_json_get(cfg, "model_type") != NULL && (model_type == NULL || strcmp(model_type, "clip_text_model") != 0))
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: model_type=%s (expected clip_text_model)",
                       model_type ? model_type : "<not a string>");
  const sf_json *arch = sf_json_get(cfg, "architectures");
  for (size_t i = 0; arch != NULL && arch->type == SF_JSON_ARRAY && i < arch->len; i++) {
    const char *a = sf_json_as_string(sf_json_at(arch, i));
    if (a == NULL || strcmp(a, "CLIPTextModel") != 0)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: architectures=%s (only CLIPTextModel)",
                         a ? a : "<not a string>");
  }

  sf_status s;
  if ((s = get_size(cfg, "hidden_size", 1, 0, MAX_HIDDEN, &c.hidden, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "num_hidden_layers", 1, 0, MAX_LAYERS, &c.layers, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "num_attention_heads", 1, 0, MAX_HIDDEN, &c.heads, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "intermediate_size", 1, 0, MAX_INTERMEDIATE, &c.intermediate, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "max_position_embeddings", 0, 77, MAX_POSITIONS, &c.max_positions, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "vocab_size", 0, 49408, MAX_VOCAB, &c.vocab, d)) != SF_OK) return s;
  if (c.hidden % c.heads != 0)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: hidden_size %zu is not divisible by %zu heads",
                       c.hidden, c.heads);

  const sf_json *act = sf_json_get(cfg, "hidden_act");
  c.act = SF_ACT_QUICK_GELU;
  if (act != NULL) {
    const char *a = sf_json_as_string(act);
    if (a != NULL && strcmp(a, "quick_gelu") == 0) c.act = SF_ACT_QUICK_GELU;
    else if (a != NULL && strcmp(a, "gelu") == 0) c.act = SF_ACT_GELU;
    else return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: hidden_act=%s", a ? a : "<not a string>");
  }

  c.ln_eps = 1e-5f;
  const sf_json *eps = sf_json_get(cfg, "layer_norm_eps");
  if (eps != NULL) {
    double e;
    if (!sf_json_as_double(eps, &e) || !(e > 0.0) || e > 1.0)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: layer_norm_eps must be a number in (0, 1]");
    c.ln_eps = (float)e;
  }

  c.eos_token_id = 49407;
  const sf_json *eos = sf_json_get(cfg, "eos_token_id");
  if (eos != NULL && !sf_json_is_null(eos) && !sf_json_as_i64(eos, &c.eos_token_id))
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "text_encoder config: eos_token_id must be an integer");

  *out = c;
  return SF_OK;
}

/* ---- build -------------------------------------------------------------------------------- */

void sf_clip_text_accept_buffers(struct sf_weights *w) {
  if (w == NULL) return;
  const sf_st_tensor *t = sf_weights_find(w, POSITION_IDS);
  if (t != NULL) sf_weights_mark_used(w, t);
}

void sf_clip_text_destroy(sf_clip_text *m) {
  if (m == NULL) return;
  sf_graph_destroy(m->g);
  free(m->layer_out);
  if (!m->external) {
    free((void *)m->tok_emb);
    free((void *)m->tok_emb16);
    free((void *)m->pos_emb);
    free((void *)m->final_gamma);
    free((void *)m->final_beta);
  }
  free(m);
}

static sf_vid add_layer(sf_graph *g, sf_wsrc *ws, const sf_clip_text_config *c, size_t i, sf_vid x) {
  char p[4][128], name[128];
  const char *qkv[3] = {p[0], p[1], p[2]};
  const char *parts[3] = {"q_proj", "k_proj", "v_proj"};
  for (int k = 0; k < 3; k++) snprintf(p[k], sizeof p[k], "text_model.encoder.layers.%zu.self_attn.%s", i, parts[k]);
  size_t dm = c->hidden;

  snprintf(name, sizeof name, "text_model.encoder.layers.%zu.layer_norm1", i);
  sf_vid h = sf_g_layernorm(g, ws, name, x, c->ln_eps);
  sf_vid fused = sf_g_linear_fused(g, ws, qkv, 3, h, dm, 1);
  sf_vid a = sf_g_attention(g, fused, 0, fused, dm, 2 * dm, c->heads, dm / c->heads, 1);
  snprintf(p[3], sizeof p[3], "text_model.encoder.layers.%zu.self_attn.out_proj", i);
  a = sf_g_linear(g, ws, p[3], a, dm, 1);
  x = sf_g_add(g, x, a);

  snprintf(name, sizeof name, "text_model.encoder.layers.%zu.layer_norm2", i);
  h = sf_g_layernorm(g, ws, name, x, c->ln_eps);
  snprintf(name, sizeof name, "text_model.encoder.layers.%zu.mlp.fc1", i);
  h = sf_g_linear(g, ws, name, h, c->intermediate, 1);
  h = sf_g_act(g, h, c->act);
  snprintf(name, sizeof name, "text_model.encoder.layers.%zu.mlp.fc2", i);
  h = sf_g_linear(g, ws, name, h, dm, 1);
  return sf_g_add(g, x, h);
}

sf_clip_text *sf_clip_text_build(const sf_clip_text_config *c, sf_wsrc *ws, sf_diag *d) {
  if (c == NULL || ws == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder: NULL config or weight source");
    return NULL;
  }
  if (c->hidden == 0 || c->layers == 0 || c->heads == 0 || c->hidden % c->heads != 0 || c->intermediate == 0 ||
      c->vocab == 0 || c->max_positions == 0 || (c->act != SF_ACT_QUICK_GELU && c->act != SF_ACT_GELU)) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder: inconsistent config");
    return NULL;
  }
  if (sf_backend_init(d) != SF_OK) return NULL;
  if (sf_wsrc_has(ws, "text_projection.weight", 0)) {
    sf_diag_set(d, SF_ERR_UNSUPPORTED,
                "unsupported: text_encoder checkpoint has text_projection.weight (a CLIPTextModelWithProjection); "
                "SD-1.x uses a plain CLIPTextModel");
    return NULL;
  }

  sf_clip_text *m = calloc(1, sizeof *m);
  if (m == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "text_encoder: out of memory");
    return NULL;
  }
  m->cfg = *c;
  m->g = sf_graph_create("text_encoder");
  m->layer_out = calloc(c->layers, sizeof *m->layer_out);
  if (m->g == NULL || m->layer_out == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "text_encoder: out of memory");
    sf_clip_text_destroy(m);
    return NULL;
  }

  size_t dm = c->hidden;
  int64_t tok_shape[2] = {(int64_t)c->vocab, (int64_t)dm};
  int64_t pos_shape[2] = {(int64_t)c->max_positions, (int64_t)dm};
  int64_t ln_shape[1] = {(int64_t)dm};
  static const char tok_name[] = "text_model.embeddings.token_embedding.weight";
  /* The token embedding is the text encoder's largest tensor (49408 x 768: 152 MB as f32): it is
   * held as half when the weights are f16 or q8, or stored as F16 (then exactly: the gather
   * widens it back bit for bit). */
  sf_weight_policy pol = sf_wsrc_weight_policy(ws);
  m->tok_half = pol == SF_WEIGHTS_FORCE_F16 || pol == SF_WEIGHTS_FORCE_Q8 ||
                (pol == SF_WEIGHTS_AS_STORED && sf_wsrc_is_f16(ws, tok_name));
  static const char pos_name[] = "text_model.embeddings.position_embedding.weight";
  if (sf_wsrc_is_pack(ws)) { /* in place, as the load that wrote the pack held them */
    m->external = 1;
    const void *t = sf_wsrc_pack_tensor(ws, tok_name, 2, tok_shape, m->tok_half);
    if (m->tok_half) m->tok_emb16 = t;
    else m->tok_emb = t;
    m->pos_emb = sf_wsrc_pack_tensor(ws, pos_name, 2, pos_shape, 0);
  } else {
    if (sf_wsrc_is_dry(ws)) { /* neither copy is held; a real build holds the f32 one for a while */
      sf_wsrc_check(ws, tok_name, 2, tok_shape);
      if (m->tok_half) sf_wsrc_note_stage(ws, 0, c->vocab * dm);
    } else {
      m->tok_emb = sf_wsrc_fetch(ws, tok_name, 2, tok_shape, SF_INIT_FAN_IN, dm);
    }
    if (m->tok_emb != NULL && m->tok_half) {
      size_t n = c->vocab * dm;
      uint16_t *half = malloc(n * sizeof *half);
      if (half == NULL) {
        sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "text_encoder: out of memory");
        sf_clip_text_destroy(m);
        return NULL;
      }
      for (size_t i = 0; i < n; i++) half[i] = sf_float_to_half(m->tok_emb[i]);
      free((void *)m->tok_emb);
      m->tok_emb = NULL;
      m->tok_emb16 = half;
    }
    m->pos_emb = sf_wsrc_fetch(ws, pos_name, 2, pos_shape, SF_INIT_FAN_IN, dm);
  }

  m->input = sf_graph_input(m->g, "embeddings", dm);
  /* Kept alive to the end so clip_skip == layers (the embeddings themselves) can be served. */
  sf_graph_mark_output(m->g, m->input);
  sf_vid x = m->input;
  for (size_t i = 0; i < c->layers; i++) {
    x = add_layer(m->g, ws, c, i, x);
    sf_graph_mark_output(m->g, x);
    m->layer_out[i] = x;
  }

  static const char fg_name[] = "text_model.final_layer_norm.weight", fb_name[] = "text_model.final_layer_norm.bias";
  if (sf_wsrc_is_pack(ws)) {
    m->final_gamma = sf_wsrc_pack_tensor(ws, fg_name, 1, ln_shape, 0);
    m->final_beta = sf_wsrc_pack_tensor(ws, fb_name, 1, ln_shape, 0);
  } else {
    m->final_gamma = sf_wsrc_fetch(ws, fg_name, 1, ln_shape, SF_INIT_ONES, dm);
    m->final_beta = sf_wsrc_fetch(ws, fb_name, 1, ln_shape, SF_INIT_ZEROS, dm);
  }

  /* The weight source holds the first (most specific) cause when a fetch failed. */
  if (sf_wsrc_status(ws, 0, d) != SF_OK || sf_graph_build_status(m->g, d) != SF_OK ||
      sf_wsrc_status(ws, 1, d) != SF_OK) {
    sf_clip_text_destroy(m);
    return NULL;
  }
  return m;
}

/* ---- run ---------------------------------------------------------------------------------- */

static sf_shape text_input(const sf_clip_text *m, size_t batch, size_t tokens) {
  return (sf_shape){batch, 1, tokens, m->cfg.hidden};
}

sf_status sf_clip_text_plan(const sf_clip_text *m, sf_plan *pl, size_t batch, size_t tokens, size_t threads,
                            sf_diag *d) {
  sf_shape shape = text_input(m, batch, tokens);
  return sf_graph_plan(m->g, pl, &shape, 1, threads, d);
}

sf_status sf_clip_text_run(sf_clip_text *m, const sf_exec *ex, sf_plan *pl, const int32_t *ids, size_t batch,
                           size_t tokens, int clip_skip, float *out, sf_diag *d) {
  return sf_clip_text_run_ext(m, ex, pl, ids, batch, tokens, NULL, 0, clip_skip, out, d);
}

sf_status sf_clip_text_run_ext(sf_clip_text *m, const sf_exec *ex, sf_plan *pl, const int32_t *ids, size_t batch,
                               size_t tokens, const float *extra, size_t n_extra, int clip_skip, float *out,
                               sf_diag *d) {
  if (m == NULL || ex == NULL || pl == NULL || ids == NULL || out == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder: NULL argument");
  const sf_clip_text_config *c = &m->cfg;
  if (batch == 0 || tokens == 0 || tokens > c->max_positions)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder: %zu x %zu ids (tokens must be 1..%zu, batch >= 1)",
                       batch, tokens, c->max_positions);
  if (clip_skip < 0 || (size_t)clip_skip > c->layers)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder: clip_skip %d is outside 0..%zu", clip_skip,
                       c->layers);
  if (extra == NULL) n_extra = 0;
  for (size_t i = 0; i < batch * tokens; i++)
    if (ids[i] < 0 || (size_t)ids[i] >= c->vocab + n_extra)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                         "text_encoder: token id %ld at [%zu, %zu] is outside the vocabulary (0..%zu)", (long)ids[i],
                         i / tokens, i % tokens, c->vocab + n_extra - 1);

  if (m->tok_emb == NULL && m->tok_emb16 == NULL)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "text_encoder: built for inspection only: it has no weights");
  sf_shape shape = text_input(m, batch, tokens);
  sf_status s = sf_graph_prepare(m->g, pl, &shape, 1, ex, d);
  if (s != SF_OK) return s;

  size_t dm = c->hidden;
  float *x = sf_plan_data(pl, ex, m->input);
  for (size_t b = 0; b < batch; b++)
    for (size_t t = 0; t < tokens; t++) {
      const float *pe = m->pos_emb + t * dm;
      float *row = x + (b * tokens + t) * dm;
      size_t id = (size_t)ids[b * tokens + t];
      if (id >= c->vocab) {
        const float *te = extra + (id - c->vocab) * dm;
        for (size_t k = 0; k < dm; k++) row[k] = te[k] + pe[k];
      } else if (m->tok_emb16 != NULL) {
        const uint16_t *te = m->tok_emb16 + (size_t)ids[b * tokens + t] * dm;
        for (size_t k = 0; k < dm; k++) row[k] = sf_half_to_float(te[k]) + pe[k];
      } else {
        const float *te = m->tok_emb + (size_t)ids[b * tokens + t] * dm;
        for (size_t k = 0; k < dm; k++) row[k] = te[k] + pe[k];
      }
    }

  s = sf_graph_execute(m->g, pl, ex, d);
  if (s != SF_OK) return s;

  size_t from_end = (size_t)clip_skip;
  sf_vid src = from_end == c->layers ? m->input : m->layer_out[c->layers - 1 - from_end];
  sf_layernorm_f32(ex->pool, sf_plan_data(pl, ex, src), out, batch * tokens, dm, c->ln_eps, m->final_gamma,
                   m->final_beta);
  return SF_OK;
}

sf_status sf_clip_text_pooled(const sf_clip_text *m, const int32_t *ids, size_t batch, size_t tokens,
                              const float *last_hidden, float *pooled, sf_diag *d) {
  if (m == NULL || ids == NULL || last_hidden == NULL || pooled == NULL || tokens == 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "text_encoder pooled: NULL or empty argument");
  size_t dm = m->cfg.hidden;
  for (size_t b = 0; b < batch; b++) {
    const int32_t *row = ids + b * tokens;
    size_t at = 0;
    if (m->cfg.eos_token_id == 2) {
      /* first maximum, as torch.argmax */
      for (size_t t = 1; t < tokens; t++)
        if (row[t] > row[at]) at = t;
    } else {
      for (size_t t = 0; t < tokens; t++)
        if ((int64_t)row[t] == m->cfg.eos_token_id) {
          at = t;
          break;
        }
    }
    memcpy(pooled + b * dm, last_hidden + (b * tokens + at) * dm, dm * sizeof *pooled);
  }
  return SF_OK;
}

size_t sf_clip_text_hidden(const sf_clip_text *m) { return m ? m->cfg.hidden : 0; }
size_t sf_clip_text_extra_bytes(const sf_clip_text *m) {
  if (m == NULL) return 0;
  size_t tok = m->cfg.vocab * m->cfg.hidden * (m->tok_half ? sizeof(uint16_t) : sizeof(float));
  return tok + (m->cfg.max_positions + 2) * m->cfg.hidden * sizeof(float);
}
const sf_clip_text_config *sf_clip_text_get_config(const sf_clip_text *m) { return m ? &m->cfg : NULL; }
sf_graph *sf_clip_text_graph(const sf_clip_text *m) { return m ? m->g : NULL; }

/* ---- parameters for packs ---------------------------------------------------------------- */

static sf_status tensor_blob(const char *name, uint32_t dtype, size_t rows, size_t cols, const void *data,
                             sf_graph_param_fn fn, void *user) {
  sf_pack_blob b;
  memset(&b, 0, sizeof b);
  snprintf(b.name, sizeof b.name, "%s", name);
  b.network = SF_NET_TEXT_ENCODER;
  b.kind = SF_PACK_TENSOR;
  b.dtype = dtype;
  b.ndim = rows ? 2 : 1;
  b.shape[0] = rows ? rows : cols;
  b.shape[1] = rows ? cols : 0;
  b.size = (uint64_t)(rows ? rows : 1) * cols * sf_pack_dtype_bytes(dtype);
  b.data = data;
  return fn(user, &b, NULL);
}

sf_status sf_clip_text_params(const sf_clip_text *m, sf_graph_param_fn fn, void *user, sf_diag *d) {
  const sf_clip_text_config *c = &m->cfg;
  if (m->tok_emb == NULL && m->tok_emb16 == NULL)
    return sf_diag_set(d, SF_ERR_BAD_STATE, "text_encoder: built for inspection only: it has no weights");
  sf_status s = tensor_blob("text_model.embeddings.token_embedding.weight", m->tok_emb16 ? SF_PACK_F16 : SF_PACK_F32,
                            c->vocab, c->hidden, m->tok_emb16 ? (const void *)m->tok_emb16 : (const void *)m->tok_emb,
                            fn, user);
  if (s == SF_OK)
    s = tensor_blob("text_model.embeddings.position_embedding.weight", SF_PACK_F32, c->max_positions, c->hidden,
                    m->pos_emb, fn, user);
  if (s == SF_OK) s = sf_graph_params(m->g, SF_NET_TEXT_ENCODER, fn, user, d);
  if (s == SF_OK)
    s = tensor_blob("text_model.final_layer_norm.weight", SF_PACK_F32, 0, c->hidden, m->final_gamma, fn, user);
  if (s == SF_OK) s = tensor_blob("text_model.final_layer_norm.bias", SF_PACK_F32, 0, c->hidden, m->final_beta, fn, user);
  return s;
}
