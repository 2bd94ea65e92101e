/* TAESD, the tiny SD autoencoder (madebyollin/taesd), as diffusers' AutoencoderTiny.
 *
 * Two checkpoint namings map onto one builder:
 *  - a diffusers AutoencoderTiny folder: config.json + one safetensors with
 *    decoder.layers.N... and encoder.layers.N...;
 *  - the raw taesd.py files (taesd_decoder / taesd_encoder as safetensors), whose keys are
 *    nn.Sequential indices: the decoder's start at 1 because index 0 is its Clamp.
 *
 * Latents are pipeline-space (TAESD's scaling_factor is 1.0: no 0.18215 division). The
 * decoder is tanh(x/3)*3, conv, ReLU, then per stage Blocks (conv-ReLU-conv-ReLU-conv plus
 * skip, ReLU), nearest x2 upsampling and a conv; the final conv gives ~[0, 1] (taesd.py's raw
 * output). The public modes map images to the KL decoder's [-1, 1] range as diffusers does.
 * A built TAESD is immutable; plans and activations belong to the caller's run state. */
#ifndef SF_MODELS_TAESD_H
#define SF_MODELS_TAESD_H

#include <pthreadpool.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/diag.h"
#include "graph/graph.h"
#include "graph/wsrc.h"
#include "io/json.h"
#include "io/vfs.h"

#define SF_TAESD_MAX_STAGES 8

typedef struct sf_taesd_config {
  size_t in_channels, out_channels, latent_channels;
  size_t n_enc, enc_channels[SF_TAESD_MAX_STAGES], enc_blocks[SF_TAESD_MAX_STAGES];
  size_t n_dec, dec_channels[SF_TAESD_MAX_STAGES], dec_blocks[SF_TAESD_MAX_STAGES];
  float scaling_factor; /* the pipeline's latent scale (1.0 for TAESD) */
} sf_taesd_config;

/* taesd.py's Encoder(latent_channels) / Decoder(latent_channels): 64 channels throughout,
 * encoder blocks (1,3,3,3), decoder blocks (3,3,3,1). */
void sf_taesd_config_default(sf_taesd_config *out, size_t latent_channels);
/* Parses a diffusers AutoencoderTiny config.json (missing keys take diffusers' defaults;
 * act_fn other than relu, upsample_fn other than nearest or a scaling factor other than 2
 * are SF_ERR_UNSUPPORTED). */
sf_status sf_taesd_config_parse(const sf_json *config, sf_taesd_config *out, sf_diag *d);

typedef enum sf_taesd_naming {
  SF_TAESD_NAMES_DIFFUSERS = 0, /* decoder.layers.N / encoder.layers.N */
  SF_TAESD_NAMES_TAESD_PY = 1   /* N (decoder offset by its leading Clamp) */
} sf_taesd_naming;

enum { SF_TAESD_DECODER = 1, SF_TAESD_ENCODER = 2, SF_TAESD_BOTH = 3 };

typedef struct sf_taesd sf_taesd;

/* Builds the decoder from dec_ws and the encoder from enc_ws (either may be NULL: that part
 * is not built; both may be the same source). Every distinct source must then have no
 * unused tensor; with one diffusers checkpoint and one part, excuse the other half first
 * with sf_taesd_accept_unbuilt (sf_taesd_open_dir does). */
sf_taesd *sf_taesd_build(const sf_taesd_config *cfg, sf_taesd_naming naming, sf_wsrc *dec_ws, sf_wsrc *enc_ws,
                         sf_diag *d);
void sf_taesd_accept_unbuilt(struct sf_weights *w, int parts);
/* A diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors). */
sf_taesd *sf_taesd_open_dir(const char *dir, int parts, sf_diag *d);
/* The raw taesd.py files; either path may be NULL. The latent width is read from the files
 * (4 for SD-1.x, 16 for taef1/taesd3). */
sf_taesd *sf_taesd_open_files(const char *decoder_path, const char *encoder_path, sf_diag *d);
/* The same two, reading from fs (io/vfs.h). */
sf_taesd *sf_taesd_open_dir_vfs(const sf_vfs *fs, const char *dir, int parts, sf_diag *d);
sf_taesd *sf_taesd_open_files_vfs(const sf_vfs *fs, const char *decoder_path, const char *encoder_path,
                                  sf_diag *d);
void sf_taesd_destroy(sf_taesd *t);

/* latents NCHW [b, latent_channels, h, w] -> image NCHW [b, out_channels, 8h, 8w] (for the
 * default architecture; f = sf_taesd_scale_factor in general).
 * flags (SF_TAESD_*): without SF_TAESD_LATENTS_UNSCALED the latents are pipeline-space and
 * divided by scaling_factor (1.0 for TAESD) first; without SF_TAESD_IMAGE_RAW the image is
 * mapped to [-1, 1] (x*2-1, diffusers AutoencoderTiny.decode), unclamped, else it is the
 * network's own output (~[0, 1]). Runs in the caller's run state (ex; pl: the state's plan
 * of the decoder graph). */
enum { SF_TAESD_LATENTS_UNSCALED = 1, SF_TAESD_IMAGE_RAW = 2, SF_TAESD_RAW = 3 };
/* Plans pl as the decoder (encoder = 0; latent sides h, w) or the encoder (encoder = 1; image
 * sides h, w) would run b images, without a workspace (estimates). BAD_STATE without that part. */
sf_status sf_taesd_plan(const sf_taesd *t, sf_plan *pl, int encoder, size_t b, size_t h, size_t w, size_t threads, sf_diag *d);

sf_status sf_taesd_decode(sf_taesd *t, const sf_exec *ex, sf_plan *pl, const float *latents, size_t b, size_t h,
                          size_t w, unsigned flags, float *image, sf_diag *d);
/* image NCHW [b, in_channels, H, W], H and W multiples of f -> latents [b, L, H/f, W/f].
 * Without SF_TAESD_IMAGE_RAW the image is in [-1, 1] (mapped to (x+1)/2 first), else in
 * [0, 1], the network's own range; without SF_TAESD_LATENTS_UNSCALED the latents are returned
 * pipeline-space (times scaling_factor). */
sf_status sf_taesd_encode(sf_taesd *t, const sf_exec *ex, sf_plan *pl, const float *image, size_t b, size_t H,
                          size_t W, unsigned flags, float *latents, sf_diag *d);

const sf_taesd_config *sf_taesd_get_config(const sf_taesd *t);
size_t sf_taesd_scale_factor(const sf_taesd *t, int encoder); /* 8 for TAESD */
int sf_taesd_parts(const sf_taesd *t);
sf_graph *sf_taesd_decoder_graph(const sf_taesd *t);
sf_graph *sf_taesd_encoder_graph(const sf_taesd *t);

#endif
