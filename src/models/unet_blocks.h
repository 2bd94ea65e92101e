/* The UNet's building blocks (diffusers ResnetBlock2D, Transformer2DModel with its
 * BasicTransformerBlocks, Downsample2D, Upsample2D) as graph builders. Internal to the UNet. */
#ifndef SF_MODELS_UNET_BLOCKS_H
#define SF_MODELS_UNET_BLOCKS_H

#include "graph/graph.h"
#include "graph/wsrc.h"

/* What every block of one UNet shares. */
typedef struct sf_unet_ctx {
  sf_graph *g;
  sf_wsrc *ws;
  sf_vid temb_act;           /* act(time embedding) [n,1,1,time_embed_dim]: every resnet projects it */
  sf_vid text;               /* encoder hidden states [n,1,T,cross_attention_dim] */
  size_t groups;             /* norm_num_groups */
  float eps;                 /* norm_eps of the resnets and conv_norm_out */
  int linear_projection;     /* Transformer2D proj_in/proj_out as linear instead of 1x1 conv */
  size_t downsample_padding; /* 1, or 0: pad right/bottom only */
} sf_unet_ctx;

/* GN-SiLU-conv3x3, + time projection, GN-SiLU-conv3x3, + (1x1 shortcut when the width
 * changes), all divided by output_scale_factor. */
sf_vid sf_unet_resnet(const sf_unet_ctx *c, const char *prefix, sf_vid x, size_t out_ch, float output_scale_factor);

/* GroupNorm(eps 1e-6), proj_in, `depth` BasicTransformerBlocks (self-attention or, with
 * only_cross, text attention; cross-attention to the text; GEGLU feed-forward), proj_out,
 * plus the input. head_dim = channels / heads. */
sf_vid sf_unet_transformer2d(const sf_unet_ctx *c, const char *prefix, sf_vid x, size_t heads, size_t depth,
                             int only_cross);

/* Stride-2 3x3 conv (padding 1, or right/bottom 1 when downsample_padding is 0) and nearest x2 followed by a 3x3 conv.
 */
sf_vid sf_unet_downsample(const sf_unet_ctx *c, const char *prefix, sf_vid x);
sf_vid sf_unet_upsample(const sf_unet_ctx *c, const char *prefix, sf_vid x);

#endif
