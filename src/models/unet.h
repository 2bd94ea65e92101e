/* diffusers UNet2DConditionModel (SD-1.x family, incl. pruned variants such as BK-SDM and
 * SnapFusion-style UNets): the noise/velocity predictor eps(latents, t, text).
 *
 * Built from a diffusers config.json (every per-stage value resolved at parse time) plus a
 * weight source, as one graph; runs at any batch and latent size whose sides are multiples of
 * 2^(number of downsamplers), re-planning only when the input shapes change. */
#ifndef SF_MODELS_UNET_H
#define SF_MODELS_UNET_H

#include <pthreadpool.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/diag.h"
#include "graph/graph.h"
#include "graph/wsrc.h"
#include "io/json.h"

#define SF_UNET_MAX_BLOCKS 8
#define SF_UNET_MAX_LAYERS 16 /* resnets per block */

typedef enum sf_unet_block_kind {
  SF_UNET_BLOCK_PLAIN = 0,     /* DownBlock2D / UpBlock2D: resnets only */
  SF_UNET_BLOCK_CROSS_ATTN = 1 /* CrossAttnDownBlock2D / CrossAttnUpBlock2D: resnet + Transformer2D */
} sf_unet_block_kind;

typedef enum sf_unet_mid_kind {
  SF_UNET_MID_NONE = 0,       /* mid_block_type: null (BK-SDM) */
  SF_UNET_MID_CROSS_ATTN = 1, /* UNetMidBlock2DCrossAttn: resnet, (Transformer2D, resnet) */
  SF_UNET_MID_RESNET = 2      /* UNetMidBlock2D as UNet2DConditionModel builds it: one resnet */
} sf_unet_mid_kind;

/* One down, mid or up block with everything the builder needs. */
typedef struct sf_unet_block {
  sf_unet_block_kind kind;
  size_t in_channels;      /* down: input of the first resnet; up: prev_output_channel */
  size_t skip_in_channels; /* up only: diffusers' in_channels (skip width of the last resnet) */
  size_t out_channels;
  size_t layers;                                 /* resnets (up blocks: layers_per_block + 1) */
  size_t transformer_layers[SF_UNET_MAX_LAYERS]; /* per resnet, cross-attention blocks only */
  size_t heads;                                  /* attention heads; head_dim = out_channels / heads */
  size_t cross_attention_dim;
  int only_cross_attention; /* attn1 attends to the text too */
  int resample;             /* down: stride-2 conv after; up: nearest x2 + conv after */
} sf_unet_block;

typedef struct sf_unet_config {
  size_t in_channels, out_channels;
  int center_input_sample;
  int flip_sin_to_cos;
  float freq_shift;
  size_t time_proj_dim;  /* sinusoid width = block_out_channels[0] */
  size_t time_embed_dim; /* time_embedding_dim or 4 * block_out_channels[0] */
  int timestep_post_act; /* SiLU after time_embedding.linear_2 */
  int time_embed_act;    /* SiLU once on the embedding before the blocks */
  size_t time_cond_proj_dim; /* 0, or the guidance embedding's width (LCM: time_embedding.cond_proj) */
  size_t n_blocks;
  size_t block_out_channels[SF_UNET_MAX_BLOCKS];
  sf_unet_block down[SF_UNET_MAX_BLOCKS];
  sf_unet_block up[SF_UNET_MAX_BLOCKS];
  sf_unet_mid_kind mid_kind;
  sf_unet_block mid; /* layers = 1 (+1 resnet), in = out = block_out_channels[last] */
  float mid_block_scale_factor;
  size_t norm_num_groups;
  float norm_eps;
  size_t conv_in_kernel, conv_out_kernel;
  int use_linear_projection;
  size_t downsample_padding;  /* 1, or 0 = diffusers' right/bottom-only padding */
  size_t cross_attention_dim; /* width of the text embeddings (0 if no block attends) */
  size_t n_downsamplers;      /* latent sides must be multiples of 2^this */
} sf_unet_config;

/* Parses a diffusers UNet2DConditionModel config. Unsupported features are
 * SF_ERR_UNSUPPORTED ("unsupported: <field>=<value>"); malformed or inconsistent configs
 * SF_ERR_BAD_MODEL naming the key. Missing keys take diffusers' defaults, except
 * block_out_channels / down_block_types / up_block_types, which are required. */
sf_status sf_unet_config_parse(const sf_json *config, sf_unet_config *out, sf_diag *d);

typedef struct sf_unet sf_unet;

/* Builds the graph, fetching every tensor from ws; then checks that the checkpoint has no
 * tensor the architecture did not use. NULL with d set on failure. ws stays the caller's. */
sf_unet *sf_unet_build(const sf_unet_config *cfg, sf_wsrc *ws, sf_diag *d);
void sf_unet_destroy(sf_unet *u);

/* latents NCHW [batch, in_ch, h, w]; timesteps [batch] float32; cond [batch,
 * time_cond_proj_dim] (the guidance embedding of sf_guidance_embedding_f32) for a UNet with
 * time_cond_proj_dim, else ignored; NULL adds nothing (diffusers' timestep_cond=None: the
 * projection has no bias, so NULL equals zeros); text [batch, tokens,
 * cross_attention_dim]; out NCHW [batch, out_ch, h, w] (may not alias latents). h and w must
 * be positive multiples of 2^n_downsamplers. Runs in the caller's run state: ex (pool,
 * cancel, workspace) and pl, the state's plan of this UNet's graph (replanned when the shapes
 * or threads change). Any number of run states may run one UNet at once. */
sf_status sf_unet_run(sf_unet *u, const sf_exec *ex, sf_plan *pl, const float *latents, size_t batch, size_t h,
                      size_t w, const float *timesteps, const float *cond, const float *text, size_t tokens, float *out,
                      sf_diag *d);

/* Plans pl as sf_unet_run would, without a workspace (estimates). */
sf_status sf_unet_plan(const sf_unet *u, sf_plan *pl, size_t batch, size_t h, size_t w, size_t tokens, size_t threads,
                       sf_diag *d);

/* LatentConsistencyModelPipeline.get_guidance_scale_embedding in float32, for n values
 * w = guidance_scale - 1: the sinusoid of 1000*w over dim/2 frequencies
 * exp(-k*ln(10000)/(dim/2-1)), [sin | cos], zero-padded when dim is odd; out [n, dim].
 * dim >= 4. */
void sf_guidance_embedding_f32(const float *w, size_t n, size_t dim, float *out);

const sf_unet_config *sf_unet_get_config(const sf_unet *u);
/* Latent sides must be multiples of this (2^n_downsamplers). */
size_t sf_unet_size_multiple(const sf_unet *u);
/* The graph (for stats with a plan: MACs; weights). */
sf_graph *sf_unet_graph(const sf_unet *u);

#endif
