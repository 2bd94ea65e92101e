/* diffusers AutoencoderKL (the SD-1.x VAE and narrower variants such as the half-width
 * SnapFusion decoder): decoder latents -> image and encoder image -> posterior mean/logvar.
 *
 * Built from a diffusers config.json plus a weight source, as up to two graphs (decoder,
 * encoder) built only when asked for; each runs at any batch and size. A built VAE is
 * immutable; the plan (replanned only when the input shape or the thread count changes) and
 * the activations belong to the caller's run state, whose workspace is reused by liveness,
 * so a 512x512 decode never holds every intermediate (SD-1.5 decoder at 512x512, batch 1:
 * 640 MiB vs 5 GiB for all values). Any number of run states may use one VAE at once. */
#ifndef SF_MODELS_VAE_H
#define SF_MODELS_VAE_H

#include <pthreadpool.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/diag.h"
#include "graph/graph.h"
#include "graph/wsrc.h"
#include "io/json.h"

struct sf_weights;
struct sf_component;

#define SF_VAE_MAX_LEVELS 8

typedef struct sf_vae_config {
  size_t in_channels, out_channels, latent_channels;
  size_t n_levels; /* len(block_out_channels); the image is 2^(n_levels-1) times the latent */
  size_t block_out_channels[SF_VAE_MAX_LEVELS];
  size_t layers_per_block; /* encoder resnets per level; the decoder has one more */
  size_t norm_num_groups;
  float scaling_factor;
  int use_quant_conv, use_post_quant_conv, mid_block_add_attention;
} sf_vae_config;

/* Parses an AutoencoderKL config.json. Missing keys take diffusers' defaults except
 * block_out_channels (required). Block types other than DownEncoderBlock2D /
 * UpDecoderBlock2D, act_fn other than silu, and latents_mean / latents_std / a non-zero
 * shift_factor (latent conventions of other pipelines) are SF_ERR_UNSUPPORTED. */
sf_status sf_vae_config_parse(const sf_json *config, sf_vae_config *out, sf_diag *d);

enum { SF_VAE_DECODER = 1, SF_VAE_ENCODER = 2, SF_VAE_BOTH = 3 };

typedef struct sf_vae sf_vae;

/* Builds the parts asked for (SF_VAE_DECODER and/or SF_VAE_ENCODER), fetching every tensor
 * from ws, then fails if the checkpoint holds a tensor nothing used. With a checkpoint and
 * only one part, first excuse the other half with sf_vae_accept_unbuilt (sf_vae_open
 * does). Accepts both attention namings (to_q/to_k/to_v/to_out.0 and the deprecated
 * query/key/value/proj_attn). ws stays the caller's. */
sf_vae *sf_vae_build(const sf_vae_config *cfg, sf_wsrc *ws, int parts, sf_diag *d);
/* Marks the tensors of the half not in `parts` as used in w, so the unused-tensor check
 * covers exactly the built half. */
void sf_vae_accept_unbuilt(struct sf_weights *w, int parts);
/* Parses the component's config and builds from its weights (component "vae"). */
sf_vae *sf_vae_open(const struct sf_component *comp, int parts, sf_diag *d);
void sf_vae_destroy(sf_vae *v);

/* z NCHW [b, latent_channels, h, w] -> image NCHW [b, out_channels, f*h, f*w] with
 * f = sf_vae_scale_factor: the raw decoder output, nominally [-1, 1], not clamped.
 * z_is_scaled = 0: z is pipeline-space latents and is divided by scaling_factor first;
 * 1: z was already divided. image must not alias z. Runs in the caller's run state: ex, and
 * pl, the state's plan of the decoder graph. */
/* Plans pl as the decoder (encoder = 0; latent sides h, w) or the encoder (encoder = 1; image
 * sides h, w) would run b images, without a workspace (estimates). BAD_STATE without that part. */
sf_status sf_vae_plan(const sf_vae *v, sf_plan *pl, int encoder, size_t b, size_t h, size_t w, size_t threads, sf_diag *d);

sf_status sf_vae_decode(sf_vae *v, const sf_exec *ex, sf_plan *pl, const float *z, size_t b, size_t h, size_t w,
                        int z_is_scaled, float *image, sf_diag *d);

/* image NCHW [b, in_channels, H, W] in [-1, 1], H and W positive multiples of f ->
 * mean and logvar NCHW [b, latent_channels, H/f, W/f] of the posterior, unscaled
 * (pipeline latents are scaling_factor * sample). logvar is clamped to [-30, 20] and may be
 * NULL. pl: the run state's plan of the encoder graph. */
sf_status sf_vae_encode(sf_vae *v, const sf_exec *ex, sf_plan *pl, const float *image, size_t b, size_t H, size_t W,
                        float *mean, float *logvar, sf_diag *d);

/* img2img: out[i] = scale * (mean[i] + exp(0.5 * logvar[i]) * noise[i]) for n values, as
 * DiagonalGaussianDistribution.sample then the pipeline's scaling_factor multiplication
 * (pass scale = sf_vae_get_config(v)->scaling_factor, or 1 for unscaled). out may alias
 * any input. */
void sf_vae_posterior_sample(const float *mean, const float *logvar, const float *noise, size_t n, float scale,
                             float *out);

const sf_vae_config *sf_vae_get_config(const sf_vae *v);
size_t sf_vae_scale_factor(const sf_vae *v); /* 2^(n_levels-1): 8 for SD */
int sf_vae_parts(const sf_vae *v);
/* The graphs (for stats with a plan); NULL if not built. */
sf_graph *sf_vae_decoder_graph(const sf_vae *v);
sf_graph *sf_vae_encoder_graph(const sf_vae *v);

#endif
