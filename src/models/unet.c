/* UNet2DConditionModel:
 *
 *   t -> sinusoid -> linear_1 -> SiLU -> linear_2 ----------------------------- temb
 *   guidance embedding -> cond_proj -> + (LCM: time_cond_proj_dim, added before linear_1)
 *   x -> conv_in -> down blocks (resnet [+ transformer]) x L, downsample -----> skips
 *                -> mid block (resnet, transformer, resnet) or nothing
 *                -> up blocks (concat(h, skip) -> resnet [+ transformer]) x L+1, upsample
 *                -> GroupNorm -> SiLU -> conv_out
 *
 * The sinusoid is computed outside the graph (it is per-sample scalar work); everything else
 * is one graph planned for the current (batch, h, w, tokens). */
#include "models/unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/ops/kernels.h"
#include "models/unet_blocks.h"

#define MAX_SKIPS (SF_UNET_MAX_BLOCKS * (SF_UNET_MAX_LAYERS + 1) + 1)

struct sf_unet {
  sf_unet_config cfg;
  sf_graph *g;
  sf_vid in_sample, in_temb, in_text, in_cond, out; /* in_cond: -1 without time_cond_proj_dim */
};

/* The down path's outputs, consumed last-in first-out by the up path. */
typedef struct skip_stack {
  sf_vid v[MAX_SKIPS];
  size_t n;
} skip_stack;

static void push(skip_stack *s, sf_vid v) {
  if (s->n < MAX_SKIPS) s->v[s->n++] = v;
}

/* TimestepEmbedding: linear_1(sample + cond_proj(condition)) -> SiLU -> linear_2. */
static sf_vid time_embedding(sf_unet *u, sf_wsrc *ws, sf_vid sinusoid) {
  const sf_unet_config *c = &u->cfg;
  if (c->time_cond_proj_dim) {
    sf_vid cond = sf_g_linear(u->g, ws, "time_embedding.cond_proj", u->in_cond, c->time_proj_dim, 0);
    sinusoid = sf_g_add(u->g, sinusoid, cond);
  }
  sf_vid e = sf_g_linear(u->g, ws, "time_embedding.linear_1", sinusoid, c->time_embed_dim, 1);
  e = sf_g_act(u->g, e, SF_ACT_SILU);
  e = sf_g_linear(u->g, ws, "time_embedding.linear_2", e, c->time_embed_dim, 1);
  if (c->timestep_post_act) e = sf_g_act(u->g, e, SF_ACT_SILU);
  if (c->time_embed_act) e = sf_g_act(u->g, e, SF_ACT_SILU);
  return e;
}

static sf_vid down_block(const sf_unet_ctx *ctx, const sf_unet_block *b, size_t i, sf_vid h, skip_stack *skips) {
  char p[128];
  for (size_t l = 0; l < b->layers; l++) {
    snprintf(p, sizeof p, "down_blocks.%zu.resnets.%zu", i, l);
    h = sf_unet_resnet(ctx, p, h, b->out_channels, 1.0f);
    if (b->kind == SF_UNET_BLOCK_CROSS_ATTN) {
      snprintf(p, sizeof p, "down_blocks.%zu.attentions.%zu", i, l);
      h = sf_unet_transformer2d(ctx, p, h, b->heads, b->transformer_layers[l], b->only_cross_attention);
    }
    push(skips, h);
  }
  if (b->resample) {
    snprintf(p, sizeof p, "down_blocks.%zu.downsamplers.0", i);
    h = sf_unet_downsample(ctx, p, h);
    push(skips, h);
  }
  return h;
}

static sf_vid mid_block(const sf_unet_ctx *ctx, const sf_unet_config *c, sf_vid h) {
  const sf_unet_block *b = &c->mid;
  char p[128];
  h = sf_unet_resnet(ctx, "mid_block.resnets.0", h, b->out_channels, c->mid_block_scale_factor);
  for (size_t l = 0; l < b->layers; l++) {
    snprintf(p, sizeof p, "mid_block.attentions.%zu", l);
    h = sf_unet_transformer2d(ctx, p, h, b->heads, b->transformer_layers[l], 0);
    snprintf(p, sizeof p, "mid_block.resnets.%zu", l + 1);
    h = sf_unet_resnet(ctx, p, h, b->out_channels, c->mid_block_scale_factor);
  }
  return h;
}

static sf_vid up_block(const sf_unet_ctx *ctx, const sf_unet_block *b, size_t i, sf_vid h, skip_stack *skips,
                       sf_diag *d) {
  char p[128];
  for (size_t l = 0; l < b->layers; l++) {
    /* diffusers sizes the resnets from the config; the skip actually popped must agree. */
    size_t want_in = l == 0 ? b->in_channels : b->out_channels;
    size_t want_skip = l + 1 == b->layers ? b->skip_in_channels : b->out_channels;
    if (skips->n == 0) {
      sf_diag_set(d, SF_ERR_BAD_MODEL,
                  "unet config: up_blocks.%zu needs more skip connections than the down path makes", i);
      return -1;
    }
    sf_vid skip = skips->v[--skips->n];
    size_t have_in = sf_graph_channels(ctx->g, h), have_skip = sf_graph_channels(ctx->g, skip);
    if (sf_graph_build_status(ctx->g, NULL) == SF_OK && (have_in != want_in || have_skip != want_skip)) {
      sf_diag_set(d, SF_ERR_BAD_MODEL,
                  "unet config: up_blocks.%zu.resnets.%zu expects %zu + %zu input channels, the network provides "
                  "%zu + %zu",
                  i, l, want_in, want_skip, have_in, have_skip);
      return -1;
    }
    h = sf_g_concat(ctx->g, h, skip); /* torch.cat([hidden_states, res_hidden_states], dim=1) */
    snprintf(p, sizeof p, "up_blocks.%zu.resnets.%zu", i, l);
    h = sf_unet_resnet(ctx, p, h, b->out_channels, 1.0f);
    if (b->kind == SF_UNET_BLOCK_CROSS_ATTN) {
      snprintf(p, sizeof p, "up_blocks.%zu.attentions.%zu", i, l);
      h = sf_unet_transformer2d(ctx, p, h, b->heads, b->transformer_layers[l], b->only_cross_attention);
    }
  }
  if (b->resample) {
    snprintf(p, sizeof p, "up_blocks.%zu.upsamplers.0", i);
    h = sf_unet_upsample(ctx, p, h);
  }
  return h;
}

static sf_status build_graph(sf_unet *u, sf_wsrc *ws, sf_diag *d) {
  const sf_unet_config *c = &u->cfg;
  sf_graph *g = u->g;
  sf_diag arch = {0};
  u->in_sample = sf_graph_input(g, "sample", c->in_channels);
  u->in_temb = sf_graph_input(g, "timestep_embedding", c->time_proj_dim);
  u->in_text = sf_graph_input(g, "encoder_hidden_states", c->cross_attention_dim);
  u->in_cond = c->time_cond_proj_dim ? sf_graph_input(g, "timestep_cond", c->time_cond_proj_dim) : -1;

  sf_unet_ctx ctx = {.g = g,
                     .ws = ws,
                     .text = u->in_text,
                     .groups = c->norm_num_groups,
                     .eps = c->norm_eps,
                     .linear_projection = c->use_linear_projection,
                     .downsample_padding = c->downsample_padding};
  /* The time embedding and the convolutions next to the latents are kept precise under q8
   * (sf_graph_set_sensitive): their errors reach every block, or the output directly. */
  sf_graph_set_sensitive(g, 1);
  /* Every resnet applies its nonlinearity to temb before projecting: do it once. */
  ctx.temb_act = sf_g_act(g, time_embedding(u, ws, u->in_temb), SF_ACT_SILU);

  size_t k = c->conv_in_kernel;
  sf_vid h = sf_g_conv2d(g, ws, "conv_in", u->in_sample, c->block_out_channels[0], k, 1, (k - 1) / 2, 1);
  sf_graph_set_sensitive(g, 0);
  skip_stack skips = {.n = 0};
  push(&skips, h);
  for (size_t i = 0; i < c->n_blocks; i++) h = down_block(&ctx, &c->down[i], i, h, &skips);
  if (c->mid_kind != SF_UNET_MID_NONE) h = mid_block(&ctx, c, h);
  for (size_t i = 0; i < c->n_blocks; i++) h = up_block(&ctx, &c->up[i], i, h, &skips, &arch);
  if (skips.n != 0)
    sf_diag_set(&arch, SF_ERR_BAD_MODEL, "unet config: %zu skip connections of the down path are never consumed",
                skips.n);

  h = sf_g_groupnorm(g, ws, "conv_norm_out", h, c->norm_num_groups, c->norm_eps, 1);
  k = c->conv_out_kernel;
  sf_graph_set_sensitive(g, 1);
  u->out = sf_g_conv2d(g, ws, "conv_out", h, c->out_channels, k, 1, (k - 1) / 2, 1);
  sf_graph_set_sensitive(g, 0);
  sf_graph_mark_output(g, u->out);

  /* An architecture inconsistency (arch) or a weight-source failure is the most specific
   * cause; the graph's sticky error merely follows from them. */
  if (arch.status != SF_OK) return sf_diag_set(d, arch.status, "%s", arch.msg);
  sf_status s = sf_wsrc_status(ws, 0, d);
  if (s != SF_OK) return s;
  s = sf_graph_build_status(g, d);
  if (s != SF_OK) return s;
  return sf_wsrc_status(ws, 1, d);
}

sf_unet *sf_unet_build(const sf_unet_config *cfg, sf_wsrc *ws, sf_diag *d) {
  if (cfg == NULL || ws == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "unet: NULL config or weight source");
    return NULL;
  }
  sf_unet *u = calloc(1, sizeof *u);
  if (u == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "unet: out of memory");
    return NULL;
  }
  u->cfg = *cfg;
  u->g = sf_graph_create("unet");
  if (u->g == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "unet: out of memory");
    free(u);
    return NULL;
  }
  if (build_graph(u, ws, d) != SF_OK) {
    sf_unet_destroy(u);
    return NULL;
  }
  return u;
}

void sf_unet_destroy(sf_unet *u) {
  if (u == NULL) return;
  sf_graph_destroy(u->g);

  free(u);
}

const sf_unet_config *sf_unet_get_config(const sf_unet *u) { return u ? &u->cfg : NULL; }
size_t sf_unet_size_multiple(const sf_unet *u) { return u ? (size_t)1 << u->cfg.n_downsamplers : 1; }
sf_graph *sf_unet_graph(const sf_unet *u) { return u ? u->g : NULL; }

/* The graph's input shapes, in sf_graph_input order; returns their count. */
static size_t unet_inputs(const sf_unet *u, size_t batch, size_t h, size_t w, size_t tokens, sf_shape shapes[4]) {
  const sf_unet_config *c = &u->cfg;
  shapes[0] = (sf_shape){batch, h, w, c->in_channels};
  shapes[1] = (sf_shape){batch, 1, 1, c->time_proj_dim};
  shapes[2] = (sf_shape){batch, 1, tokens, c->cross_attention_dim};
  if (!c->time_cond_proj_dim) return 3;
  shapes[3] = (sf_shape){batch, 1, 1, c->time_cond_proj_dim};
  return 4;
}

void sf_guidance_embedding_f32(const float *w, size_t n, size_t dim, float *out) {
  const size_t half = dim / 2;
  /* torch.log(torch.tensor(10000.)) / (half - 1), then exp(arange(half) * -that), in float32 */
  const float step = logf(10000.0f) / (float)(half - 1);
  for (size_t s = 0; s < n; s++) {
    const float w1000 = w[s] * 1000.0f;
    float *row = out + s * dim;
    for (size_t k = 0; k < half; k++) {
      const float a = w1000 * expf((float)k * -step);
      row[k] = (float)sin((double)a);
      row[half + k] = (float)cos((double)a);
    }
    if (dim % 2) row[dim - 1] = 0.0f;
  }
}

sf_status sf_unet_plan(const sf_unet *u, sf_plan *pl, size_t batch, size_t h, size_t w, size_t tokens, size_t threads,
                       sf_diag *d) {
  sf_shape shapes[4];
  size_t n_in = unet_inputs(u, batch, h, w, tokens, shapes);
  return sf_graph_plan(u->g, pl, shapes, n_in, threads, d);
}

sf_status sf_unet_run(sf_unet *u, const sf_exec *ex, sf_plan *pl, const float *latents, size_t batch, size_t h,
                      size_t w, const float *timesteps, const float *cond, const float *text, size_t tokens, float *out,
                      sf_diag *d) {
  if (u == NULL || ex == NULL || pl == NULL || latents == NULL || timesteps == NULL || text == NULL || out == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "unet: NULL argument");
  const sf_unet_config *c = &u->cfg;
  size_t factor = sf_unet_size_multiple(u);
  if (batch == 0 || tokens == 0 || h == 0 || w == 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "unet: empty input (batch %zu, %zux%zu latent, %zu tokens)", batch,
                       h, w, tokens);
  if (h % factor != 0 || w % factor != 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "unet: latent size %zux%zu is not a multiple of %zu (the UNet halves it %zu times); "
                       "image sides must be multiples of %zu",
                       h, w, factor, c->n_downsamplers, factor * 8);

  sf_shape shapes[4];
  size_t n_in = unet_inputs(u, batch, h, w, tokens, shapes);
  sf_status s = sf_graph_prepare(u->g, pl, shapes, n_in, ex, d);
  if (s != SF_OK) return s;

  pthreadpool_t pool = ex->pool;
  float *x = sf_plan_data(pl, ex, u->in_sample);
  float *temb = sf_plan_data(pl, ex, u->in_temb);
  float *ctx = sf_plan_data(pl, ex, u->in_text);
  if (x == NULL || temb == NULL || ctx == NULL) return sf_diag_set(d, SF_ERR_INTERNAL, "unet: graph inputs unplanned");
  sf_nchw_to_nhwc_f32(pool, latents, x, batch, c->in_channels, h, w);
  if (c->center_input_sample) {
    size_t count = batch * h * w * c->in_channels;
    for (size_t i = 0; i < count; i++) x[i] = 2.0f * x[i] - 1.0f;
  }
  /* Timesteps(dim, flip_sin_to_cos, freq_shift): scale 1, max_period 10000. */
  sf_timestep_embedding_f32(timesteps, batch, c->time_proj_dim, c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f,
                            temb);
  memcpy(ctx, text, batch * tokens * c->cross_attention_dim * sizeof *ctx);
  if (c->time_cond_proj_dim) {
    float *tc = sf_plan_data(pl, ex, u->in_cond);
    if (tc == NULL) return sf_diag_set(d, SF_ERR_INTERNAL, "unet: graph inputs unplanned");
    size_t count = batch * c->time_cond_proj_dim;
    if (cond) memcpy(tc, cond, count * sizeof *tc);
    else memset(tc, 0, count * sizeof *tc);
  }

  s = sf_graph_execute(u->g, pl, ex, d);
  if (s != SF_OK) return s;
  sf_nhwc_to_nchw_f32(pool, sf_plan_data(pl, ex, u->out), out, batch, h, w, c->out_channels);
  return SF_OK;
}
