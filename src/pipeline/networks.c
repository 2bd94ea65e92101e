/* Building the networks of a pipeline from its folder: each from its component's config
 * and either its checkpoint or seeded random weights. */
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "graph/wsrc.h"
#include "io/pack.h"
#include "lora/lora.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/pipeline.h"
#include "text/tokenizer.h"

/* Whether the component comes from a set of files in memory (sf_files): its names are shown as
 * "memory:PATH", a folder's relative to the folder. */
static int from_memory(const sf_component *c) {
  return c->config_shown != NULL && strncmp(c->config_shown, "memory:", 7) == 0;
}

/* A weight source for a component: the pipeline's pack file, its checkpoint, or random values
 * when asked for (each component gets its own stream so adding one does not change the others). dry (an
 * inspection or a memory estimate, graph/wsrc.h): nothing is read or packed and every problem
 * goes to the list; a component with a config and no weights is then checked as architecture
 * only. */
static sf_wsrc *component_wsrc(sf_pipeline *p, const sf_component *c, unsigned nets, sf_problems *dry, sf_diag *d) {
  sf_wsrc *ws = NULL;
  if (p->pack != NULL && dry == NULL) {
    /* nets: the sf_network bits built from this component (the VAE's decoder and encoder) */
    ws = sf_wsrc_from_pack(p->pack, nets, (sf_igemm_isa)p->pack_isa, c->name);
  } else if (p->random_weights || (dry != NULL && c->weights == NULL)) {
    uint64_t h = 1469598103934665603ull;
    for (const char *s = c->name; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    ws = sf_wsrc_random(p->random_seed ^ h, c->name);
  } else if (c->weights == NULL) {
    sf_diag_set(d, SF_ERR_BAD_MODEL,
                "%s: %s has a config but no weights (load with SF_PARAM_RANDOM_WEIGHTS to benchmark it)",
                p->folder->dir, c->name);
    return NULL;
  } else {
    sf_weights_clear_used(c->weights);
    /* messages about tensors name the checkpoint file (a memory set's names are complete) */
    char label[512];
    if (c->weights_file == NULL) snprintf(label, sizeof label, "%s", c->name);
    else if (p->folder->single_file) snprintf(label, sizeof label, "%s (%s)", p->folder->dir, c->weights_file);
    else if (from_memory(c)) snprintf(label, sizeof label, "memory:%s", c->weights_file);
    else snprintf(label, sizeof label, "%s/%s", p->folder->dir, c->weights_file);
    ws = sf_wsrc_from_weights(c->weights, label);
  }
  if (ws == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", c->name);
    return NULL;
  }
  sf_wsrc_set_weight_policy(ws, (sf_weight_policy)p->weight_policy);
  sf_wsrc_set_xnnpack_gemm(ws, p->xnnpack_gemm);
  if (dry) sf_wsrc_set_dry(ws, dry);
  /* LoRAs are merged into the weights as the builder fetches them (checkpoint sources only) */
  if (p->loras != NULL && !sf_wsrc_is_pack(ws) && !sf_wsrc_is_random(ws)) {
    if (nets == SF_NET_UNET) sf_wsrc_set_merge(ws, sf_lora_merge, &p->lora_binding[SF_LORA_UNET]);
    if (nets == SF_NET_TEXT_ENCODER) sf_wsrc_set_merge(ws, sf_lora_merge, &p->lora_binding[SF_LORA_TEXT_ENCODER]);
  }
  return ws;
}

sf_status sf_pipeline_open_loras(sf_pipeline *p, const char *spec, unsigned networks, sf_diag *d) {
  if (p->pack != NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "SF_PARAM_LORAS with SF_PARAM_PACK_PATH is not supported: a pack holds packed weights; load "
                       "the folder with the LoRAs and write a pack of it instead");
  if (p->random_weights)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "SF_PARAM_LORAS with SF_PARAM_RANDOM_WEIGHTS is not supported: LoRAs are merged into checkpoint "
                       "weights");
  p->loras = sf_lora_set_open(spec, d);
  if (p->loras == NULL) return d->status;
  static const struct {
    sf_lora_component comp;
    const char *name;
    unsigned bit;
  } parts[] = {{SF_LORA_UNET, "unet", SF_NET_UNET}, {SF_LORA_TEXT_ENCODER, "text_encoder", SF_NET_TEXT_ENCODER}};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    p->lora_binding[parts[i].comp].set = p->loras;
    p->lora_binding[parts[i].comp].comp = parts[i].comp;
    const size_t n = sf_lora_unbound(p->loras, parts[i].comp);
    if (n == 0) continue;
    const sf_component *c = sf_model_folder_find(p->folder, parts[i].name);
    if (!(networks & parts[i].bit) || c == NULL) {
      sf_ctx_log(p->ctx, SF_LOG_INFO, "LoRA: %zu module(s) of the %s left out: it is not loaded", n, parts[i].name);
      continue;
    }
    if (c->weights == NULL)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "LoRA: %s: the %s has no checkpoint to merge %zu LoRA module(s) into",
                         p->folder->dir, parts[i].name, n);
    if (sf_lora_bind(p->loras, parts[i].comp, c->weights, d) != SF_OK) return d->status;
  }
  for (size_t i = 0; i < sf_lora_count(p->loras); i++)
    sf_ctx_log(p->ctx, SF_LOG_INFO, "LoRA %s at scale %g: %zu modules", sf_lora_path(p->loras, i),
               sf_lora_scale(p->loras, i), sf_lora_module_count(p->loras, i));
  return SF_OK;
}

static const sf_json *component_config(const sf_component *c, sf_diag *d) {
  const sf_json *cfg = sf_component_config(c);
  if (cfg == NULL) sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: no config", c->name);
  return cfg;
}

/* The status of parsing component c's config; its errors name the file. */
static sf_status named(const sf_pipeline *p, const sf_component *c, sf_status parsed, sf_diag *d) {
  if (parsed == SF_OK || c->config_shown == NULL) return parsed;
  /* a memory set's names are complete ("memory:unet/config.json"); a folder's are relative to it */
  if (from_memory(c)) sf_diag_prefix(d, "%s: ", c->config_shown);
  else sf_diag_prefix(d, "%s/%s: ", p->folder->dir, c->config_shown);
  return parsed;
}

/* ---- building one network from its stored config ---- */

/* A build packs (and converts, and draws random values) over the context's pool, held as a
 * network call holds it (SF_PARAM_THREADS waits); dry builds read and pack nothing. */
static void build_begin(sf_pipeline *p, sf_problems *dry, sf_wsrc *ws) {
  if (dry == NULL) sf_wsrc_set_pool(ws, sf_ctx_pool_acquire(p->ctx));
}
static void build_end(sf_pipeline *p, sf_problems *dry, sf_wsrc *ws) {
  if (dry != NULL) return;
  sf_wsrc_set_pool(ws, NULL);
  sf_ctx_pool_release(p->ctx);
}

/* After a build: what it held besides the network (its staging, and the checkpoint's pages it
 * read, file-backed), then those pages are dropped from the resident set. */
static void end_build(const sf_component *c, sf_problems *dry, sf_net_build *nb, const sf_wsrc *ws) {
  if (nb) {
    nb->stage_bytes = sf_wsrc_stage_bytes(ws);
    nb->file_bytes = c->weights && !sf_wsrc_is_random(ws) && !sf_wsrc_is_pack(ws) ? sf_weights_data_bytes(c->weights) : 0;
  }
  if (dry == NULL && c->weights) sf_weights_drop_pages(c->weights);
}

/* Parameters of the networks loaded (or inspected); not for the dry builds of estimates. */
static void count_parameters(sf_pipeline *p, unsigned bits, const sf_wsrc *ws) {
  if (sf_wsrc_is_dry(ws) && !p->inspect_only) return;
  if ((p->counted & bits) != bits) p->parameters += sf_wsrc_param_count(ws);
  p->counted |= bits;
}

sf_status sf_pipeline_build_text_encoder(sf_pipeline *p, sf_problems *dry, sf_clip_text **out, sf_net_build *nb,
                                         sf_diag *d) {
  const sf_component *c = sf_model_folder_find(p->folder, "text_encoder");
  sf_wsrc *ws = component_wsrc(p, c, SF_NET_TEXT_ENCODER, dry, d);
  if (ws == NULL) return d->status;
  if (!p->random_weights && c->weights) sf_clip_text_accept_buffers(c->weights);
  build_begin(p, dry, ws);
  *out = sf_clip_text_build(&p->text_cfg, ws, d);
  build_end(p, dry, ws);
  if (*out) count_parameters(p, SF_NET_TEXT_ENCODER, ws);
  end_build(c, dry, nb, ws);
  sf_wsrc_destroy(ws);
  return *out ? SF_OK : d->status;
}

sf_status sf_pipeline_build_unet(sf_pipeline *p, sf_problems *dry, sf_unet **out, sf_net_build *nb, sf_diag *d) {
  const sf_component *c = sf_model_folder_find(p->folder, "unet");
  sf_wsrc *ws = component_wsrc(p, c, SF_NET_UNET, dry, d);
  if (ws == NULL) return d->status;
  build_begin(p, dry, ws);
  *out = sf_unet_build(&p->unet_cfg, ws, d);
  build_end(p, dry, ws);
  if (*out) count_parameters(p, SF_NET_UNET, ws);
  end_build(c, dry, nb, ws);
  sf_wsrc_destroy(ws);
  return *out ? SF_OK : d->status;
}

sf_status sf_pipeline_build_vae(sf_pipeline *p, int parts, sf_problems *dry, sf_vae **out, sf_net_build *nb,
                                sf_diag *d) {
  const sf_component *c = sf_model_folder_find(p->folder, "vae");
  sf_wsrc *ws = component_wsrc(p, c, ((parts & 1) ? SF_NET_VAE_DECODER : 0) | ((parts & 2) ? SF_NET_VAE_ENCODER : 0), dry, d);
  if (ws == NULL) return d->status;
  if (!p->random_weights && c->weights) sf_vae_accept_unbuilt(c->weights, parts);
  build_begin(p, dry, ws);
  *out = sf_vae_build(&p->vae_cfg, ws, parts, d);
  build_end(p, dry, ws);
  if (*out) count_parameters(p, ((parts & 1) ? SF_NET_VAE_DECODER : 0) | ((parts & 2) ? SF_NET_VAE_ENCODER : 0), ws);
  end_build(c, dry, nb, ws);
  sf_wsrc_destroy(ws);
  return *out ? SF_OK : d->status;
}

static sf_status build_text_encoder(sf_pipeline *p, sf_diag *d) {
  return sf_pipeline_build_text_encoder(p, NULL, &p->text, NULL, d);
}
static sf_status build_unet(sf_pipeline *p, sf_diag *d) { return sf_pipeline_build_unet(p, NULL, &p->unet, NULL, d); }
/* parts: 1 decoder, 2 encoder. */
static sf_status build_vae(sf_pipeline *p, int parts, sf_diag *d) {
  return sf_pipeline_build_vae(p, parts, NULL, &p->vae, NULL, d);
}

/* A diffusers AutoencoderTiny folder, or the raw taesd.py weight files, in fs. */
static struct sf_taesd *open_taesd(const sf_vfs *fs, const char *dir, int parts, sf_diag *d) {
  char *dec = sf_vfs_join(fs, dir, "taesd_decoder.safetensors");
  char *enc = sf_vfs_join(fs, dir, "taesd_encoder.safetensors");
  struct sf_taesd *t = NULL;
  if (dec == NULL || enc == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "taesd: out of memory");
  } else {
    int has_dec = sf_vfs_exists(fs, dec), has_enc = sf_vfs_exists(fs, enc);
    if (!has_dec && !has_enc) t = sf_taesd_open_dir_vfs(fs, dir, parts, d);
    else t = sf_taesd_open_files_vfs(fs, (parts & 1) && has_dec ? dec : NULL, (parts & 2) && has_enc ? enc : NULL, d);
  }
  free(dec);
  free(enc);
  return t;
}

sf_status sf_pipeline_load_tokenizer(sf_pipeline *p, const sf_vfs *fs, const char *override_dir, sf_diag *d) {
  const sf_component *c = sf_model_folder_find(p->folder, "tokenizer");
  const char *dir = override_dir ? override_dir : c ? c->dir : NULL;
  if (dir == NULL) return SF_OK;
  /* SF_PARAM_TOKENIZER_PATH and a single file's config folder are in the file system */
  p->tokenizer = sf_tokenizer_load_dir_vfs(override_dir || p->folder->config_source ? sf_vfs_os() : fs, dir, d);
  if (p->tokenizer == NULL && override_dir) sf_diag_prefix(d, "SF_PARAM_TOKENIZER_PATH %s: ", override_dir);
  return p->tokenizer ? SF_OK : d->status;
}

void sf_pipeline_free_networks(sf_pipeline *p) {
  sf_tokenizer_free(p->tokenizer);
  sf_clip_text_destroy(p->text);
  sf_unet_destroy(p->unet);
  sf_vae_destroy(p->vae);
  sf_taesd_destroy(p->taesd);
  p->tokenizer = NULL;
  p->text = NULL;
  p->unet = NULL;
  p->vae = NULL;
  p->taesd = NULL;
  p->networks = 0;
  p->configured = 0;
}

sf_status sf_pipeline_build_networks(sf_pipeline *p, const sf_vfs *fs, unsigned networks, const char *taesd_path,
                                     sf_diag *d) {
  const sf_model_folder *m = p->folder;
  const sf_component *c;
  const sf_json *cfg;
  /* Every config first, so a bad one is reported at load in either residency mode. */
  if ((networks & SF_NET_TEXT_ENCODER) && (c = sf_model_folder_find(m, "text_encoder")) != NULL) {
    if ((cfg = component_config(c, d)) == NULL || named(p, c, sf_clip_text_config_parse(cfg, &p->text_cfg, d), d) != SF_OK) return d->status;
    p->networks |= SF_NET_TEXT_ENCODER;
  }
  if ((networks & SF_NET_UNET) && (c = sf_model_folder_find(m, "unet")) != NULL) {
    if ((cfg = component_config(c, d)) == NULL || named(p, c, sf_unet_config_parse(cfg, &p->unet_cfg, d), d) != SF_OK) return d->status;
    p->networks |= SF_NET_UNET;
  }
  if ((networks & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER)) && (c = sf_model_folder_find(m, "vae")) != NULL) {
    if ((cfg = component_config(c, d)) == NULL || named(p, c, sf_vae_config_parse(cfg, &p->vae_cfg, d), d) != SF_OK) return d->status;
    p->networks |= networks & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER);
  }
  /* Resident from the start unless low-memory mode builds them when they run. */
  if (!p->low_memory) {
    if ((p->networks & SF_NET_TEXT_ENCODER) && build_text_encoder(p, d) != SF_OK) return d->status;
    if ((p->networks & SF_NET_UNET) && build_unet(p, d) != SF_OK) return d->status;
    int vae_parts = ((p->networks & SF_NET_VAE_DECODER) ? 1 : 0) | ((p->networks & SF_NET_VAE_ENCODER) ? 2 : 0);
    if (vae_parts && build_vae(p, vae_parts, d) != SF_OK) return d->status;
  }
  /* TAESD (a few MB) is always resident. */
  unsigned taesd = 0;
  if (sf_pipeline_load_taesd(p, fs, networks, taesd_path, &taesd, d) != SF_OK) return d->status;
  p->networks |= taesd;
  p->configured = p->networks;
  return SF_OK;
}

sf_status sf_pipeline_load_taesd(sf_pipeline *p, const sf_vfs *fs, unsigned networks, const char *taesd_path,
                                 unsigned *built, sf_diag *d) {
  *built = 0;
  int taesd_parts = ((networks & SF_NET_TAESD_DECODER) ? 1 : 0) | ((networks & SF_NET_TAESD_ENCODER) ? 2 : 0);
  if (!taesd_parts) return SF_OK;
  const char *dir = taesd_path; /* a path in the file system */
  const sf_vfs *taesd_fs = sf_vfs_os();
  const sf_component *c;
  if (dir == NULL && (c = sf_model_folder_find(p->folder, "taesd")) != NULL) {
    dir = c->dir;
    if (p->folder->config_source == NULL) taesd_fs = fs; /* a single file's config folder: the file system */
  }
  if (dir == NULL) return SF_OK;
  p->taesd = open_taesd(taesd_fs, dir, taesd_parts, d);
  if (p->taesd == NULL) return d->status;
  int parts = sf_taesd_parts(p->taesd);
  *built = ((parts & 1) ? SF_NET_TAESD_DECODER : 0) | ((parts & 2) ? SF_NET_TAESD_ENCODER : 0);
  return SF_OK;
}

/* ---- inspection ---- */

/* A problem of the inspection: its message (d, then cleared) joins the list. Only a failure of the
 * inspection itself (out of memory) stops it. */
static sf_status inspect_problem(sf_problems *pr, sf_diag *d) {
  sf_status s = d->status;
  if (s == SF_OK) return SF_OK;
  if (s == SF_ERR_OUT_OF_MEMORY) return s;
  sf_problems_add(pr, "%s", d->msg);
  sf_diag_clear(d);
  return SF_OK;
}

sf_status sf_pipeline_inspect_networks(sf_pipeline *p, unsigned networks, sf_problems *pr, sf_diag *d) {
  const sf_model_folder *m = p->folder;
  const sf_component *c;
  const sf_json *cfg;
  sf_status s;
  if ((networks & SF_NET_TEXT_ENCODER) && (c = sf_model_folder_find(m, "text_encoder")) != NULL) {
    if ((cfg = component_config(c, d)) != NULL && named(p, c, sf_clip_text_config_parse(cfg, &p->text_cfg, d), d) == SF_OK)
      if (sf_pipeline_build_text_encoder(p, pr, &p->text, NULL, d) == SF_OK) p->configured |= SF_NET_TEXT_ENCODER;
    if ((s = inspect_problem(pr, d)) != SF_OK) return s;
  }
  if ((networks & SF_NET_UNET) && (c = sf_model_folder_find(m, "unet")) != NULL) {
    if ((cfg = component_config(c, d)) != NULL && named(p, c, sf_unet_config_parse(cfg, &p->unet_cfg, d), d) == SF_OK)
      if (sf_pipeline_build_unet(p, pr, &p->unet, NULL, d) == SF_OK) p->configured |= SF_NET_UNET;
    if ((s = inspect_problem(pr, d)) != SF_OK) return s;
  }
  int vae_parts = ((networks & SF_NET_VAE_DECODER) ? 1 : 0) | ((networks & SF_NET_VAE_ENCODER) ? 2 : 0);
  if (vae_parts && (c = sf_model_folder_find(m, "vae")) != NULL) {
    if ((cfg = component_config(c, d)) != NULL && named(p, c, sf_vae_config_parse(cfg, &p->vae_cfg, d), d) == SF_OK)
      if (sf_pipeline_build_vae(p, vae_parts, pr, &p->vae, NULL, d) == SF_OK)
        p->configured |= networks & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER);
    if ((s = inspect_problem(pr, d)) != SF_OK) return s;
  }
  return SF_OK;
}

/* ---- low-memory residency ---- */

static int users_index(unsigned net) {
  switch (net) {
    case SF_NET_TEXT_ENCODER: return 0;
    case SF_NET_UNET: return 1;
    case SF_NET_VAE_DECODER: return 2;
    case SF_NET_VAE_ENCODER: return 3;
    default: return -1;
  }
}

static int resident(const sf_pipeline *p, unsigned net) {
  switch (net) {
    case SF_NET_TEXT_ENCODER: return p->text != NULL;
    case SF_NET_UNET: return p->unet != NULL;
    case SF_NET_VAE_DECODER: return p->vae != NULL && (sf_vae_parts(p->vae) & 1);
    case SF_NET_VAE_ENCODER: return p->vae != NULL && (sf_vae_parts(p->vae) & 2);
    default: return 1;
  }
}

/* Frees every resident network no run is using, except keep. */
static void evict_idle(sf_pipeline *p, unsigned keep) {
  unsigned freed = 0;
  if (p->text && keep != SF_NET_TEXT_ENCODER && p->users[0] == 0) {
    sf_clip_text_destroy(p->text);
    p->text = NULL;
    freed |= SF_NET_TEXT_ENCODER;
  }
  if (p->unet && keep != SF_NET_UNET && p->users[1] == 0) {
    sf_unet_destroy(p->unet);
    p->unet = NULL;
    freed |= SF_NET_UNET;
  }
  if (p->vae && p->users[2] == 0 && p->users[3] == 0) {
    sf_vae_destroy(p->vae);
    p->vae = NULL;
    freed |= SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER;
  }
  /* A pack's pages of the networks freed leave the resident set too (they stay cached). */
  if (p->pack != NULL && freed) sf_pack_drop_pages(p->pack, freed);
#ifdef __GLIBC__
  /* Freed weights below the allocator's mmap threshold (which glibc raises to the size of the
   * largest block freed, up to 32 MiB: after the first network is freed, most layers of the next
   * come from the heap) stay resident as free heap pages; without this, a low-memory generation
   * held the freed UNet's pages under the decoder's activations (snapfusion-style 512x512 q8:
   * 1130 MiB peak instead of about 900). */
  if (freed) malloc_trim(0);
#endif
}

sf_status sf_pipeline_acquire_network(sf_pipeline *p, unsigned net, sf_workspace *ws, sf_diag *d) {
  if (!p->low_memory || users_index(net) < 0) return SF_OK;
  pthread_mutex_lock(&p->resident_lock);
  sf_status s = SF_OK;
  if (!resident(p, net)) {
    /* One network at a time: whatever no run uses goes before the next one is packed. */
    evict_idle(p, net);
    sf_workspace_drop_pages(ws);
    if (net == SF_NET_TEXT_ENCODER) s = build_text_encoder(p, d);
    else if (net == SF_NET_UNET) s = build_unet(p, d);
    else if (p->vae != NULL) /* the other half is in use by another run */
      s = sf_diag_set(d, SF_ERR_BAD_STATE, "low-memory mode: the VAE encoder and decoder cannot run at once");
    else s = build_vae(p, net == SF_NET_VAE_DECODER ? 1 : 2, d);
    if (s == SF_OK) p->builds++;
#ifdef __GLIBC__
    malloc_trim(0); /* the build's staging, freed into the heap, leaves before the network runs */
#endif
  }
  if (s == SF_OK) p->users[users_index(net)]++;
  pthread_mutex_unlock(&p->resident_lock);
  return s;
}

void sf_pipeline_release_network(sf_pipeline *p, unsigned net) {
  if (!p->low_memory || users_index(net) < 0) return;
  pthread_mutex_lock(&p->resident_lock);
  p->users[users_index(net)]--;
  pthread_mutex_unlock(&p->resident_lock);
}
