/* The engine under the public API: the networks of a loaded pipeline run in a given run state.
 * Errors go to d (the API layer above turns them into the context's and thread's message);
 * nothing here calls a public sf_* entry point. */
#ifndef SF_PIPELINE_ENGINE_H
#define SF_PIPELINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "pipeline/pipeline.h"
#include "pipeline/request.h"

#define SF_CLIP_TOKENS 77

/* Shapes the loaded networks imply. */
size_t sf_engine_latent_channels(const sf_pipeline *p);            /* 0 without UNet/VAE/TAESD */
size_t sf_engine_text_hidden(const sf_pipeline *p);                /* 0 without text encoder */
size_t sf_engine_unet_text_hidden(const sf_pipeline *p);           /* cross-attention width; 0 without UNet */
size_t sf_engine_unet_out_channels(const sf_pipeline *p);          /* 0 without UNet */
size_t sf_engine_unet_multiple(const sf_pipeline *p);              /* 2^downsamplers; 1 without UNet */
size_t sf_engine_text_layers(const sf_pipeline *p);                /* 0 without text encoder */
/* Pixels per latent pixel of a decoder / encoder network (SF_NET_*): 8 for SD-1.x. */
size_t sf_engine_scale_factor(const sf_pipeline *p, unsigned network);
/* The factor of the decoder the pipeline would use by default (VAE, else TAESD; 8 without). */
size_t sf_engine_default_scale_factor(const sf_pipeline *p);
/* Image sides must be multiples of this: the decoder's factor times the UNet's 2^downsamplers. */
size_t sf_engine_size_multiple(const sf_pipeline *p);
/* The UNet's sample_size times the decoder factor (512 for SD-1.5). */
int64_t sf_engine_default_size(const sf_pipeline *p);

/* CLIP tokenisation to SF_CLIP_TOKENS ids (BOS, up to 75 tokens, EOS, padding). */
sf_status sf_engine_tokenize(const sf_pipeline *p, const char *prompt, int32_t *ids, size_t *untruncated, sf_diag *d);
/* Text embeddings [batch, tokens, hidden]; clip_skip as A1111 counts it (0 and 1: last layer). */
sf_status sf_engine_encode_ids(sf_pipeline *p, sf_run *r, const int32_t *ids, size_t batch, size_t tokens,
                               int clip_skip, float *out, sf_diag *d);
sf_status sf_engine_encode_prompt(sf_pipeline *p, sf_run *r, const char *prompt, int clip_skip, float *out,
                                  sf_diag *d);
/* The conditioning of a prompt: *out (malloc'ed) = [*tokens, hidden] encoder output, *tokens a
 * multiple of SF_CLIP_TOKENS. a1111 = 0: diffusers' one row (cut at 75 tokens); 1: A1111's
 * syntax, rows of 75 tokens and emphasis (text/prompt_chunks.h). Textual-inversion embeddings
 * of the pipeline apply in both. */
sf_status sf_engine_encode_conditioning(sf_pipeline *p, sf_run *r, const char *prompt, int clip_skip, int a1111,
                                        float **out, size_t *tokens, sf_diag *d);
/* guidance: the guidance scale a UNet with time_cond_proj_dim (LCM) is conditioned on (its
 * embedding goes to every batch item); ignored by other UNets. */
sf_status sf_engine_unet(sf_pipeline *p, sf_run *r, const float *latents, size_t batch, size_t height, size_t width,
                         const float *timesteps, double guidance, const float *text, size_t tokens, float *out,
                         sf_diag *d);

/* LCM-distilled models. A UNet with time_cond_proj_dim takes the guidance scale as an embedding
 * (guidance_embedded); such a model, or a LatentConsistencyModelPipeline folder, runs without the
 * unconditional batch (uses_cfg is 0) and defaults to 4 steps at guidance 8 (request_defaults
 * fills what the request left unset). */
#define SF_LCM_DEFAULT_STEPS 4
#define SF_LCM_DEFAULT_GUIDANCE 8.0
int sf_engine_guidance_embedded(const sf_pipeline *p);
int sf_engine_is_lcm(const sf_pipeline *p);
void sf_engine_request_defaults(const sf_pipeline *p, sf_request *rq);
/* Whether a generation at this guidance runs the unconditional batch (classifier-free guidance). */
int sf_engine_uses_cfg(const sf_pipeline *p, double guidance);

/* Flags of sf_engine_decode / sf_engine_encode_image: the public SF_LATENTS_UNSCALED and
 * SF_IMAGE_RAW. */
sf_status sf_engine_decode(sf_pipeline *p, sf_run *r, unsigned decoder, const float *latents, size_t batch,
                           size_t height, size_t width, uint32_t flags, float *image, sf_diag *d);
/* The VAE's mean is returned scaled to pipeline space unless SF_LATENTS_UNSCALED; logvar
 * (VAE only) may be NULL. */
sf_status sf_engine_encode_image(sf_pipeline *p, sf_run *r, unsigned encoder, const float *image, size_t batch,
                                 size_t height, size_t width, uint32_t flags, float *mean, float *logvar, sf_diag *d);

/* Bytes of all the networks' weights as loaded (SF_INFO_WEIGHT_BYTES). */
size_t sf_engine_weight_bytes(const sf_pipeline *p);
/* The sf_weight_type the UNet's layers are held in (SF_WEIGHT_F32, _F16 or _Q8). */
int sf_engine_weight_type(const sf_pipeline *p);
/* SF_OK when the pipeline has network (an sf_network bit) to run, else BAD_STATE saying why. */
sf_status sf_engine_need(const sf_pipeline *p, unsigned network, sf_diag *d);

/* For tools (bench, tests): the pipeline's idle run state, whose plans and workspace are those
 * of the last finished run; NULL if none. Not while runs are in flight. */
sf_run *sf_engine_idle_run(sf_pipeline *p);

#endif
