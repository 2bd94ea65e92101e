/* Pack files of a pipeline: what is written (every parameter of the resident text encoder, UNet and
 * VAE, in build order, pointing at the networks' own packed bytes), and the checks a load from
 * one makes before any network is built. */
#include "pipeline/pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"
#include "graph/ops/igemm.h"
#include "graph/wsrc.h"
#include "io/pack.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/engine.h"

static const char *weight_type_name(uint32_t t) {
  return t == SF_WEIGHT_F32 ? "f32" : t == SF_WEIGHT_F16 ? "f16" : t == SF_WEIGHT_Q8 ? "q8" : "as stored";
}

static const char *network_name(unsigned bit) {
  switch (bit) {
    case SF_NET_TEXT_ENCODER: return "text encoder";
    case SF_NET_UNET: return "UNet";
    case SF_NET_VAE_DECODER: return "VAE decoder";
    case SF_NET_VAE_ENCODER: return "VAE encoder";
    default: return "network";
  }
}

static const char *component_of(unsigned bit) {
  return bit == SF_NET_TEXT_ENCODER ? "text_encoder" : bit == SF_NET_UNET ? "unet" : "vae";
}

/* ---- loading ---- */

sf_status sf_pipeline_open_pack(sf_pipeline *p, const char *path, int64_t weight_type, sf_diag *d) {
  p->pack = sf_pack_open(path, d);
  if (p->pack == NULL) return d->status;
  const sf_pack_info *in = sf_pack_get_info(p->pack);
  const sf_igemm_isa here = sf_igemm_isa_from_name(sf_igemm_isa_name(SF_IGEMM_ISA_BEST));
  size_t here_mr = 0, here_nr = 0;
  sf_igemm_isa_tile(here, &here_mr, &here_nr);
  const sf_igemm_isa isa = sf_igemm_isa_from_name(in->isa);
  if (isa == SF_IGEMM_ISA_BEST)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                       "%s was packed for the panel layout '%s' (NR %u), which this library does not know; this CPU "
                       "uses %s (NR %zu): pack the model again on this machine (snapfusion pack)",
                       path, in->isa, (unsigned)in->nr, sf_igemm_isa_name(here), here_nr);
  /* Every weight type the file holds panels of must run in its layout here. */
  int types = 0;
  for (size_t i = 0; i < sf_pack_count(p->pack); i++) {
    const sf_pack_blob *b = sf_pack_at(p->pack, i);
    if (b->kind == SF_PACK_PANELS) types |= 1 << (b->dtype == SF_PACK_F32 ? SF_WTYPE_F32 : b->dtype == SF_PACK_F16 ? SF_WTYPE_F16 : SF_WTYPE_Q8);
  }
  for (int t = 0; t < SF_WTYPE_COUNT; t++)
    if ((types & (1 << t)) && !sf_igemm_isa_supports_type(isa, (sf_wtype)t))
      return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                         "%s holds %s panels in the %s layout (NR %u), which this CPU cannot run (it runs the %s "
                         "layout, NR %zu): pack the model again on this machine (snapfusion pack)",
                         path, sf_wtype_name((sf_wtype)t), in->isa, (unsigned)in->nr, sf_igemm_isa_name(here),
                         here_nr);
  size_t mr = 0, nr = 0;
  sf_igemm_isa_tile(isa, &mr, &nr);
  if (nr != in->nr || mr != in->mr)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: header: the %s layout has %zu x %zu tiles, the header says %u x %u",
                       path, in->isa, mr, nr, (unsigned)in->mr, (unsigned)in->nr);
  if (isa != here)
    sf_ctx_log(p->ctx, SF_LOG_INFO,
               "%s holds panels for the %s kernels; this CPU's best are %s: the results are the same, a pack made "
               "here runs faster",
               path, in->isa, sf_igemm_isa_name(here));
  if (weight_type != SF_WEIGHT_DEFAULT && (uint32_t)weight_type != in->weight_type)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "SF_PARAM_WEIGHT_TYPE asks for %s weights, but %s holds %s weights: leave it unset or pack the "
                       "model again with %s weights",
                       weight_type_name((uint32_t)weight_type), path, weight_type_name(in->weight_type),
                       weight_type_name((uint32_t)weight_type));
  static const sf_weight_policy policies[] = {SF_WEIGHTS_AS_STORED, SF_WEIGHTS_FORCE_F32, SF_WEIGHTS_FORCE_F16,
                                              SF_WEIGHTS_FORCE_Q8};
  p->weight_policy = policies[in->weight_policy];
  p->pack_isa = isa;
  return SF_OK;
}

sf_status sf_pipeline_pack_networks(const sf_pipeline *p, unsigned *networks, int components_given, sf_diag *d) {
  const unsigned packed = sf_pack_get_info(p->pack)->networks;
  const unsigned taesd = SF_NET_TAESD_DECODER | SF_NET_TAESD_ENCODER;
  if (!components_given) {
    *networks &= packed | taesd;
    return SF_OK;
  }
  for (unsigned bit = SF_NET_TEXT_ENCODER; bit <= SF_NET_VAE_ENCODER; bit <<= 1)
    if ((*networks & bit) && !(packed & bit) && sf_model_folder_find(p->folder, component_of(bit)) != NULL)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                         "SF_PARAM_COMPONENTS asks for the %s, which %s does not hold (the pipeline it was written "
                         "from had none): leave it out, or pack a pipeline that has it",
                         network_name(bit), sf_pack_label(p->pack));
  return SF_OK;
}

sf_status sf_pipeline_check_pack_configs(const sf_pipeline *p, unsigned networks, sf_diag *d) {
  const sf_pack_info *in = sf_pack_get_info(p->pack);
  for (unsigned bit = SF_NET_TEXT_ENCODER; bit <= SF_NET_VAE_ENCODER; bit <<= 1) {
    if (!(networks & bit) || !(in->networks & bit)) continue;
    const sf_component *c = sf_model_folder_find(p->folder, component_of(bit));
    if (c == NULL) continue;
    uint8_t h[32];
    sf_pack_config_hash(sf_component_config(c), h);
    const uint8_t *want = in->config_sha256[sf_pack_config_slot(bit)];
    if (memcmp(h, want, sizeof h) != 0) {
      char a[65], b[65];
      sf_sha256_hex(want, a);
      sf_sha256_hex(h, b);
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "%s was packed from another %s config (config hash %.16s..., %s has %.16s...): it belongs to "
                         "another model; pack this folder instead",
                         sf_pack_label(p->pack), component_of(bit), a, c->config_shown ? c->config_shown : c->name, b);
    }
  }
  return SF_OK;
}

/* ---- writing ---- */

typedef struct collect {
  sf_pack_blob *blobs;
  size_t n, cap;
  const struct sf_igemm_ukernel *uk; /* every layer's kernel */
  sf_igemm_isa isa;
  sf_diag *d;
} collect;

static sf_status add_blob(void *user, const sf_pack_blob *b, const sf_igemm_weights *layer) {
  collect *c = user;
  if (layer != NULL) {
    if (c->uk == NULL) {
      c->uk = layer->uk;
      c->isa = sf_igemm_weights_isa_id(layer);
    } else if (c->uk != layer->uk) {
      return sf_diag_set(c->d, SF_ERR_UNSUPPORTED, "layer %s is packed for %s, others for %s: one pack holds one layout",
                         b->name, sf_igemm_weights_isa(layer), sf_igemm_isa_name(c->isa));
    }
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 1024;
    sf_pack_blob *nb = realloc(c->blobs, cap * sizeof *nb);
    if (nb == NULL) return sf_diag_set(c->d, SF_ERR_OUT_OF_MEMORY, "out of memory listing the weights");
    c->blobs = nb;
    c->cap = cap;
  }
  c->blobs[c->n++] = *b;
  return SF_OK;
}

static uint32_t policy_weight_type(int policy) {
  switch ((sf_weight_policy)policy) {
    case SF_WEIGHTS_FORCE_F32: return SF_WEIGHT_F32;
    case SF_WEIGHTS_FORCE_F16: return SF_WEIGHT_F16;
    case SF_WEIGHTS_FORCE_Q8: return SF_WEIGHT_Q8;
    case SF_WEIGHTS_AS_STORED: break;
  }
  return SF_WEIGHT_DEFAULT;
}

sf_status sf_pipeline_write_pack_file(const sf_pipeline *p, const char *path, sf_diag *d) {
  if (p->inspect_only)
    return sf_diag_set(d, SF_ERR_BAD_STATE,
                       "the pipeline was loaded with SF_PARAM_INSPECT_ONLY: it has no weights to pack");
  if (p->low_memory)
    return sf_diag_set(d, SF_ERR_BAD_STATE,
                       "the pipeline was loaded with SF_PARAM_LOW_MEMORY: its networks are not all resident; load it "
                       "without that option to pack it");
  collect c = {.d = d};
  sf_pack_info info;
  memset(&info, 0, sizeof info);
  sf_status s = SF_OK;
  if (p->text != NULL) {
    s = sf_clip_text_params(p->text, add_blob, &c, d);
    info.networks |= SF_NET_TEXT_ENCODER;
  }
  if (s == SF_OK && p->unet != NULL) {
    s = sf_graph_params(sf_unet_graph(p->unet), SF_NET_UNET, add_blob, &c, d);
    info.networks |= SF_NET_UNET;
  }
  if (s == SF_OK && p->vae != NULL && (sf_vae_parts(p->vae) & 1)) {
    s = sf_graph_params(sf_vae_decoder_graph(p->vae), SF_NET_VAE_DECODER, add_blob, &c, d);
    info.networks |= SF_NET_VAE_DECODER;
  }
  if (s == SF_OK && p->vae != NULL && (sf_vae_parts(p->vae) & 2)) {
    s = sf_graph_params(sf_vae_encoder_graph(p->vae), SF_NET_VAE_ENCODER, add_blob, &c, d);
    info.networks |= SF_NET_VAE_ENCODER;
  }
  if (s == SF_OK && info.networks == 0)
    s = sf_diag_set(d, SF_ERR_BAD_STATE, "the pipeline has no text encoder, UNet or VAE to pack (TAESD is not packed)");
  if (s == SF_OK) {
    const sf_igemm_isa isa = c.uk != NULL ? c.isa : sf_igemm_isa_from_name(sf_igemm_isa_name(SF_IGEMM_ISA_BEST));
    size_t mr = 0, nr = 0;
    sf_igemm_isa_tile(isa, &mr, &nr);
    info.version = SF_PACK_VERSION;
    info.library_version = SF_VERSION_MAJOR * 10000 + SF_VERSION_MINOR * 100 + SF_VERSION_PATCH;
    snprintf(info.library, sizeof info.library, "%s", SF_VERSION_STRING);
    snprintf(info.isa, sizeof info.isa, "%s", sf_igemm_isa_name(isa));
    info.mr = (uint32_t)mr;
    info.nr = (uint32_t)nr;
    info.weight_policy = policy_weight_type(p->weight_policy);
    info.weight_type = (uint32_t)sf_engine_weight_type(p);
    for (unsigned bit = SF_NET_TEXT_ENCODER; bit <= SF_NET_VAE_ENCODER; bit <<= 1) {
      const sf_component *comp = (info.networks & bit) ? sf_model_folder_find(p->folder, component_of(bit)) : NULL;
      if (comp != NULL) sf_pack_config_hash(sf_component_config(comp), info.config_sha256[sf_pack_config_slot(bit)]);
    }
    s = sf_pack_write(path, &info, c.blobs, c.n, d);
  }
  free(c.blobs);
  return s;
}
