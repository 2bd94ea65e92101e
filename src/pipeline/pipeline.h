/* The pipeline object: a model folder plus the networks built from it. Once loaded it is
 * immutable (packed weights, configs, tokenizer); everything a run changes lives in its run
 * state (pipeline/run.h), so runs on one pipeline may go on concurrently from several threads.
 * The only mutable parts are the run-state bookkeeping and the last call's statistics, both
 * under runs_lock. */
#ifndef SF_PIPELINE_PIPELINE_H
#define SF_PIPELINE_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/context.h"
#include "io/model_folder.h"
#include "lora/lora.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/run.h"

struct sf_tokenizer;
struct sf_pack;
struct sf_clip_text;
struct sf_unet;
struct sf_vae;
struct sf_taesd;

struct sf_pipeline {
  sf_context *ctx;
  sf_model_folder *folder;
  int random_weights;
  uint64_t random_seed;
  int xnnpack_gemm;  /* SF_PARAM_GEMM_BACKEND 1: f32 conv / linear layers on XNNPACK */
  int weight_policy; /* sf_weight_policy (graph/wsrc.h) for every network's conv / linear layers */
  unsigned networks; /* sf_network bits available (built, or buildable in low-memory mode) */
  unsigned configured; /* bits whose configs are parsed (shapes known): networks, or what an
                        * inspection checked */
  /* The configs of the networks available (valid for the bits in networks). */
  sf_clip_text_config text_cfg;
  sf_unet_config unet_cfg;
  sf_vae_config vae_cfg;
  struct sf_tokenizer *tokenizer;
  /* The networks. Normally built at load and immutable. In low-memory mode (SF_PARAM_LOW_MEMORY)
   * built when a run needs them and freed when another network is needed and no run uses them:
   * then read only between sf_pipeline_acquire_network and _release_network. */
  struct sf_clip_text *text;
  struct sf_unet *unet;
  struct sf_vae *vae;
  struct sf_taesd *taesd;
  int low_memory;
  /* SF_PARAM_PACK_PATH: the networks' parameters come from this mapped pack file (io/pack.h), used
   * in place, its GEMM panels laid out for pack_isa (an sf_igemm_isa this CPU runs). */
  struct sf_pack *pack;
  int pack_isa;
  double unet_guidance; /* SF_PARAM_UNET_GUIDANCE: what building-block calls give an LCM UNet */
  /* SF_PARAM_LORAS: merged into the UNet's and text encoder's weights as each is packed (kept for
   * the pipeline's life: low-memory loads pack again per run); NULL without LoRAs. */
  sf_lora_set *loras;
  sf_lora_binding lora_binding[SF_LORA_COMPONENTS];
  struct sf_embeddings *embeddings; /* SF_PARAM_EMBEDDINGS; NULL without */
  int inspect_only;   /* SF_PARAM_INSPECT_ONLY: the networks are dry builds (graph/wsrc.h): checked and
                       * sized, never run; `networks` stays 0 */
  pthread_mutex_t resident_lock;
  int users[4];       /* runs using the text encoder, UNet, VAE decoder, VAE encoder now */
  unsigned counted;   /* networks whose parameters are in `parameters` */
  uint64_t builds;    /* networks packed since load (low-memory mode) */
  uint64_t parameters;
  /* Run states (pipeline/run.c) and statistics, under runs_lock. */
  pthread_mutex_t runs_lock;
  sf_run *active_runs; /* in flight */
  sf_run *idle_run;    /* kept between runs */
  char model_hash[11]; /* A1111's short hash of a single-file checkpoint, once computed (job.c) */
  /* Graph statistics of the last successful network call (SF_INFO_LAST_MACS). */
  double last_macs, last_attention_macs;
  /* The last memory estimate (pipeline/estimate.c): the bindings ask for its figures one by one. */
  uint64_t estimate_key[8];
  int estimate_valid;
  uint64_t estimate_figures[6];
};

/* Text description used by sf_pipeline_describe (format: SF_FORMAT_*). Returns a
 * malloc'd string or NULL when out of memory. */
char *sf_pipeline_describe_alloc(const sf_pipeline *p, int format);

/* Builds the networks asked for in `networks` (sf_network bits) that the folder has. fs: the
 * file source the folder was opened from (its TAESD is read there; taesd_path is a path in the
 * file system). */
sf_status sf_pipeline_build_networks(sf_pipeline *p, const sf_vfs *fs, unsigned networks, const char *taesd_path,
                                     sf_diag *d);
void sf_pipeline_free_networks(sf_pipeline *p);
/* TAESD's parts asked for in networks, from taesd_path (a file system folder) or else the folder's
 * taesd component (in fs), if either exists; *built: the sf_network bits built. */
sf_status sf_pipeline_load_taesd(sf_pipeline *p, const sf_vfs *fs, unsigned networks, const char *taesd_path,
                                 unsigned *built, sf_diag *d);
/* SF_PARAM_INSPECT_ONLY: parses the configs of the networks asked for and dry-builds them (every
 * tensor of the checkpoint checked against the architecture, nothing read or packed), going on
 * after each problem; every problem found is in `problems`. The dry networks stay in p (their
 * sizes answer SF_INFO_WEIGHT_BYTES and memory estimates); p->networks stays 0. Non-OK only when
 * the inspection itself failed (out of memory). */
sf_status sf_pipeline_inspect_networks(sf_pipeline *p, unsigned networks, sf_problems *problems, sf_diag *d);

/* One network built from p's folder (its config parsed at load) into *out, with p's weight
 * policy: real, or dry when `dry` is given (problems go there). nb (may be NULL) receives what
 * the build held besides the network. The caller serialises builds (resident_lock once loaded:
 * they mark the folder's tensors used). */
typedef struct sf_net_build {
  size_t stage_bytes; /* staging buffers held during the build */
  uint64_t file_bytes; /* checkpoint bytes read (mapped in) during the build, dropped after it */
} sf_net_build;
sf_status sf_pipeline_build_text_encoder(sf_pipeline *p, sf_problems *dry, struct sf_clip_text **out,
                                         sf_net_build *nb, sf_diag *d);
sf_status sf_pipeline_build_unet(sf_pipeline *p, sf_problems *dry, struct sf_unet **out, sf_net_build *nb,
                                 sf_diag *d);
/* parts: 1 decoder, 2 encoder, 3 both. */
sf_status sf_pipeline_build_vae(sf_pipeline *p, int parts, sf_problems *dry, struct sf_vae **out, sf_net_build *nb,
                                sf_diag *d);
/* A network for the duration of one call: in low-memory mode builds it if it is not resident
 * (first freeing every other network no run is using, and the pages of the calling run's
 * workspace ws, whose contents are dead between network calls: the build's staging and the
 * network's weights then do not stack on the previous network's activations) and keeps it
 * while in use; otherwise a no-op (the networks were built at load). */
sf_status sf_pipeline_acquire_network(sf_pipeline *p, unsigned net, struct sf_workspace *ws, sf_diag *d);
void sf_pipeline_release_network(sf_pipeline *p, unsigned net);
/* The tokenizer is loaded even when inspecting: it is cheap and validates its files.
 * override_dir: SF_PARAM_TOKENIZER_PATH (a file system folder), or NULL for the folder's own
 * tokenizer (if any), read from fs. */
/* SF_PARAM_LORAS (spec: lora/lora.h): opens the LoRA files and binds them to the checkpoints of
 * the networks asked for (names and shapes; nothing is read). Refused with a pack or random
 * weights. Modules of a component that is not loaded are logged and left out. */
sf_status sf_pipeline_open_loras(sf_pipeline *p, const char *spec, unsigned networks, sf_diag *d);
sf_status sf_pipeline_load_tokenizer(sf_pipeline *p, const sf_vfs *fs, const char *override_dir, sf_diag *d);

#endif
