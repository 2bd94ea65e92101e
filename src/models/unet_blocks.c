/* diffusers' ResnetBlock2D, Transformer2DModel / BasicTransformerBlock / Attention /
 * FeedForward(GEGLU), Downsample2D and Upsample2D on the graph, NHWC. Tensor names are the
 * checkpoint's (prefix + diffusers attribute path). */
#include "models/unet_blocks.h"

#include <stdarg.h>
#include <stdio.h>

#include "graph/conv2d_asym.h"

/* Transformer2DModel hard-codes its GroupNorm eps; BasicTransformerBlock's LayerNorms use
 * the Transformer2DModel default norm_eps. Neither follows the UNet's norm_eps. */
#define TRANSFORMER_GN_EPS 1e-6f
#define TRANSFORMER_LN_EPS 1e-5f
#define FF_MULT 4

/* Checkpoint names are short; a truncated one would simply not be found (and be reported). */
static void name_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void name_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}
#define NAME(buf, ...) name_fmt(buf, sizeof buf, __VA_ARGS__)

sf_vid sf_unet_resnet(const sf_unet_ctx *c, const char *prefix, sf_vid x, size_t out_ch, float output_scale_factor) {
  sf_graph *g = c->g;
  char n[256];
  size_t in_ch = sf_graph_channels(g, x);
  /* The shortcut conv first: the input then dies at norm1, computed over in place (graph/plan.c). */
  sf_vid shortcut = x;
  if (in_ch != out_ch) {
    NAME(n, "%s.conv_shortcut", prefix);
    shortcut = sf_g_conv2d(g, c->ws, n, x, out_ch, 1, 1, 0, 1);
  }

  NAME(n, "%s.norm1", prefix);
  sf_vid h = sf_g_groupnorm(g, c->ws, n, x, c->groups, c->eps, 1);
  NAME(n, "%s.conv1", prefix);
  h = sf_g_conv2d(g, c->ws, n, h, out_ch, 3, 1, 1, 1);

  NAME(n, "%s.time_emb_proj", prefix);
  sf_vid t = sf_g_linear(g, c->ws, n, c->temb_act, out_ch, 1);
  h = sf_g_add(g, h, t); /* [n,1,1,c] broadcast over the pixels */

  NAME(n, "%s.norm2", prefix);
  h = sf_g_groupnorm(g, c->ws, n, h, c->groups, c->eps, 1);
  NAME(n, "%s.conv2", prefix);
  h = sf_g_conv2d(g, c->ws, n, h, out_ch, 3, 1, 1, 1);

  sf_vid y = sf_g_add(g, shortcut, h);
  if (output_scale_factor != 1.0f) y = sf_g_scale(g, y, 1.0f / output_scale_factor);
  return y;
}

/* diffusers Attention with AttnProcessor: to_q/to_k/to_v without bias, scaled dot-product
 * attention over `heads`, to_out.0 with bias. kv_src < 0 means self-attention. */
static sf_vid attention(const sf_unet_ctx *c, const char *prefix, sf_vid x, sf_vid kv_src, size_t heads,
                        size_t head_dim) {
  sf_graph *g = c->g;
  size_t inner = heads * head_dim;
  char q[256], k[256], v[256], o[256];
  NAME(q, "%s.to_q", prefix);
  NAME(k, "%s.to_k", prefix);
  NAME(v, "%s.to_v", prefix);
  NAME(o, "%s.to_out.0", prefix);
  sf_vid a;
  if (kv_src < 0) {
    const char *qkv_names[3] = {q, k, v};
    sf_vid qkv = sf_g_linear_fused(g, c->ws, qkv_names, 3, x, inner, 0);
    a = sf_g_attention(g, qkv, 0, qkv, inner, 2 * inner, heads, head_dim, 0);
  } else {
    const char *kv_names[2] = {k, v};
    sf_vid qv = sf_g_linear(g, c->ws, q, x, inner, 0);
    sf_vid kv = sf_g_linear_fused(g, c->ws, kv_names, 2, kv_src, inner, 0);
    a = sf_g_attention(g, qv, 0, kv, 0, inner, heads, head_dim, 0);
  }
  return sf_g_linear(g, c->ws, o, a, sf_graph_channels(g, x), 1);
}

/* BasicTransformerBlock, norm_type "layer_norm": three pre-norm residual sub-layers. */
static sf_vid basic_transformer_block(const sf_unet_ctx *c, const char *prefix, sf_vid h, size_t heads, size_t head_dim,
                                      int only_cross) {
  sf_graph *g = c->g;
  size_t dim = sf_graph_channels(g, h);
  char n[256];

  NAME(n, "%s.norm1", prefix);
  sf_vid a = sf_g_layernorm(g, c->ws, n, h, TRANSFORMER_LN_EPS);
  NAME(n, "%s.attn1", prefix);
  a = attention(c, n, a, only_cross ? c->text : -1, heads, head_dim);
  h = sf_g_add(g, a, h);

  NAME(n, "%s.norm2", prefix);
  a = sf_g_layernorm(g, c->ws, n, h, TRANSFORMER_LN_EPS);
  NAME(n, "%s.attn2", prefix);
  a = attention(c, n, a, c->text, heads, head_dim);
  h = sf_g_add(g, a, h);

  NAME(n, "%s.norm3", prefix);
  sf_vid f = sf_g_layernorm(g, c->ws, n, h, TRANSFORMER_LN_EPS);
  NAME(n, "%s.ff.net.0.proj", prefix); /* GEGLU projection: [hidden | gate] */
  f = sf_g_linear(g, c->ws, n, f, 2 * FF_MULT * dim, 1);
  f = sf_g_geglu(g, f);
  NAME(n, "%s.ff.net.2", prefix);
  f = sf_g_linear(g, c->ws, n, f, dim, 1);
  return sf_g_add(g, f, h);
}

sf_vid sf_unet_transformer2d(const sf_unet_ctx *c, const char *prefix, sf_vid x, size_t heads, size_t depth,
                             int only_cross) {
  sf_graph *g = c->g;
  size_t ch = sf_graph_channels(g, x);
  size_t head_dim = ch / heads;
  size_t inner = heads * head_dim;
  char n[256];

  NAME(n, "%s.norm", prefix);
  sf_vid h = sf_g_groupnorm(g, c->ws, n, x, c->groups, TRANSFORMER_GN_EPS, 0);
  NAME(n, "%s.proj_in", prefix);
  h = c->linear_projection ? sf_g_linear(g, c->ws, n, h, inner, 1) : sf_g_conv2d(g, c->ws, n, h, inner, 1, 1, 0, 1);
  for (size_t i = 0; i < depth; i++) {
    NAME(n, "%s.transformer_blocks.%zu", prefix, i);
    h = basic_transformer_block(c, n, h, heads, head_dim, only_cross);
  }
  NAME(n, "%s.proj_out", prefix);
  h = c->linear_projection ? sf_g_linear(g, c->ws, n, h, ch, 1) : sf_g_conv2d(g, c->ws, n, h, ch, 1, 1, 0, 1);
  return sf_g_add(g, h, x);
}

sf_vid sf_unet_downsample(const sf_unet_ctx *c, const char *prefix, sf_vid x) {
  char n[256];
  NAME(n, "%s.conv", prefix);
  size_t ch = sf_graph_channels(c->g, x);
  if (c->downsample_padding == 0) return sf_g_conv2d_asym(c->g, c->ws, n, x, ch, 3, 2, 0, 1, 1, 0, 1);
  return sf_g_conv2d(c->g, c->ws, n, x, ch, 3, 2, 1, 1);
}

sf_vid sf_unet_upsample(const sf_unet_ctx *c, const char *prefix, sf_vid x) {
  char n[256];
  NAME(n, "%s.conv", prefix);
  sf_vid u = sf_g_upsample2x(c->g, x);
  return sf_g_conv2d(c->g, c->ws, n, u, sf_graph_channels(c->g, x), 3, 1, 1, 1);
}
