/* What a generation will hold in memory, worked out before anything is packed: every network the
 * pipeline would hold is dry-built (graph/wsrc.h: the architecture and the packed size of every
 * layer, nothing read or packed), the networks the generation runs are planned at its shapes
 * (the workspace), and the phases of the load and the run are replayed on those figures:
 *
 *   load (resident networks): network n is built while the ones before it are resident, with
 *        its staging buffers and the checkpoint pages it reads (dropped after the build);
 *   run:  every network resident, the workspace (one per run, sized for the largest plan),
 *        the run's buffers (latents, embeddings, images);
 *   low-memory: one network at a time, built (with its staging) after the run's workspace
 *        pages were given back, then run over its own plan's pages.
 *
 * plus a fixed base for the process itself. */
#include "pipeline/estimate.h"

#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/engine.h"

/* The process besides the library's data: code and data of the library, libc, XNNPACK and the
 * other dependencies, the thread pool's stacks as touched, the tokenizer, the folder's parsed
 * configs and checkpoint headers, the heap's own overhead. Measured (peak RSS of
 * `snapfusion bench txt2img` minus the other parts) at 20-40 MiB across the configs in
 * ../shared/configs; the larger end is used so the estimate errs on the safe side. */
#define SF_ESTIMATE_BASE_BYTES ((uint64_t)40 << 20)

enum { NET_TEXT, NET_UNET, NET_VAE_DEC, NET_VAE_ENC, NET_COUNT };

typedef struct net_figures {
  int present;       /* the pipeline holds (or would build) it */
  uint64_t weights;  /* packed */
  uint64_t transient; /* held while building it: staging, checkpoint pages */
} net_figures;

static uint64_t graph_weights(const sf_graph *g) {
  if (g == NULL) return 0;
  sf_graph_stats st;
  sf_graph_get_stats(g, NULL, &st);
  return st.weights_bytes;
}

static uint64_t plan_bytes(sf_plan *pl) { return sf_plan_arena_bytes(pl); }

/* Dry builds of the networks p holds or builds (under resident_lock: builds mark the folder's
 * tensors), planned for the generation's shapes. */
typedef struct dry_set {
  sf_clip_text *text;
  sf_unet *unet;
  sf_vae *vae_dec, *vae_enc;
  net_figures net[NET_COUNT];
} dry_set;

static void dry_free(dry_set *s) {
  sf_clip_text_destroy(s->text);
  sf_unet_destroy(s->unet);
  sf_vae_destroy(s->vae_dec);
  sf_vae_destroy(s->vae_enc);
}

static sf_status dry_build(sf_pipeline *p, dry_set *s, sf_diag *d) {
  const unsigned have = p->configured;
  sf_problems pr = {0}; /* the load reported them; an estimate only sizes */
  sf_net_build nb;
  sf_status st = SF_OK;
  pthread_mutex_lock(&p->resident_lock);
  if (st == SF_OK && (have & SF_NET_TEXT_ENCODER)) {
    memset(&nb, 0, sizeof nb);
    st = sf_pipeline_build_text_encoder(p, &pr, &s->text, &nb, d);
    if (st == SF_OK) {
      s->net[NET_TEXT] = (net_figures){1, graph_weights(sf_clip_text_graph(s->text)) + sf_clip_text_extra_bytes(s->text),
                                       nb.stage_bytes + nb.file_bytes};
    }
  }
  if (st == SF_OK && (have & SF_NET_UNET)) {
    memset(&nb, 0, sizeof nb);
    st = sf_pipeline_build_unet(p, &pr, &s->unet, &nb, d);
    if (st == SF_OK) s->net[NET_UNET] = (net_figures){1, graph_weights(sf_unet_graph(s->unet)), nb.stage_bytes + nb.file_bytes};
  }
  if (st == SF_OK && (have & SF_NET_VAE_DECODER)) {
    memset(&nb, 0, sizeof nb);
    st = sf_pipeline_build_vae(p, 1, &pr, &s->vae_dec, &nb, d);
    if (st == SF_OK)
      s->net[NET_VAE_DEC] = (net_figures){1, graph_weights(sf_vae_decoder_graph(s->vae_dec)), nb.stage_bytes + nb.file_bytes};
  }
  if (st == SF_OK && (have & SF_NET_VAE_ENCODER)) {
    memset(&nb, 0, sizeof nb);
    st = sf_pipeline_build_vae(p, 2, &pr, &s->vae_enc, &nb, d);
    if (st == SF_OK)
      s->net[NET_VAE_ENC] = (net_figures){1, graph_weights(sf_vae_encoder_graph(s->vae_enc)), nb.stage_bytes + nb.file_bytes};
  }
  pthread_mutex_unlock(&p->resident_lock);
  sf_problems_free(&pr);
  return st;
}

static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

sf_status sf_pipeline_estimate(sf_pipeline *p, const sf_request *rq, size_t threads, sf_memory_figures *out,
                               sf_diag *d) {
  memset(out, 0, sizeof *out);
  if (!(p->configured & SF_NET_UNET))
    return sf_diag_set(d, SF_ERR_BAD_STATE, "memory estimate: the pipeline has no UNet to generate with");
  /* The networks the generation runs, and its shapes, as sf_job_start picks them. */
  unsigned decoder = rq->decoder;
  if (decoder == 0) decoder = (p->configured & SF_NET_VAE_DECODER) ? SF_NET_VAE_DECODER : SF_NET_TAESD_DECODER;
  if (!(p->configured & decoder))
    return sf_diag_set(d, SF_ERR_BAD_STATE, "memory estimate: the pipeline has no %s",
                       decoder == SF_NET_VAE_DECODER ? "VAE decoder" : "TAESD decoder");
  unsigned encoder = 0;
  if (rq->init_rgb != NULL) {
    encoder = (p->configured & SF_NET_VAE_ENCODER) ? SF_NET_VAE_ENCODER : SF_NET_TAESD_ENCODER;
    if (!(p->configured & encoder)) return sf_diag_set(d, SF_ERR_BAD_STATE, "memory estimate: the pipeline has no encoder");
  }
  sf_request with_defaults = *rq; /* LCM models: no unconditional batch, guidance 8 unless given */
  sf_engine_request_defaults(p, &with_defaults);
  const int cfg = sf_engine_uses_cfg(p, with_defaults.guidance);
  const int uses_text = rq->prompt_embeds == NULL || (cfg && rq->negative_embeds == NULL);
  if (uses_text && !(p->configured & SF_NET_TEXT_ENCODER))
    return sf_diag_set(d, SF_ERR_BAD_STATE, "memory estimate: the pipeline has no text encoder");
  const size_t f = sf_engine_scale_factor(p, decoder), multiple = f * sf_engine_unet_multiple(p);
  const int64_t dflt = sf_engine_default_size(p);
  const int64_t W = rq->width ? rq->width : rq->init_rgb ? (int64_t)rq->init_width : dflt;
  const int64_t H = rq->height ? rq->height : rq->init_rgb ? (int64_t)rq->init_height : dflt;
  if (W <= 0 || H <= 0 || W % (int64_t)multiple || H % (int64_t)multiple || W > 16384 || H > 16384)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "memory estimate: size %lldx%lld: sides must be multiples of %zu up to 16384",
                       (long long)W, (long long)H, multiple);
  const size_t h = (size_t)H / f, w = (size_t)W / f, batch = cfg ? 2 : 1;
  const size_t tokens = SF_CLIP_TOKENS, latent_c = p->unet_cfg.in_channels;

  /* The same generation shape as the last estimate: its figures (dry builds are not free). */
  const uint64_t key[8] = {(uint64_t)W, (uint64_t)H, batch, (uint64_t)uses_text, decoder, encoder,
                           (uint64_t)(rq->batch_count > 1 ? rq->batch_count : 1), threads};
  pthread_mutex_lock(&p->runs_lock);
  int hit = p->estimate_valid && memcmp(p->estimate_key, key, sizeof key) == 0;
  if (hit) {
    out->peak = p->estimate_figures[0];
    out->weights = p->estimate_figures[1];
    out->workspace = p->estimate_figures[2];
    out->other = p->estimate_figures[3];
    out->weights_total = p->estimate_figures[4];
    out->workspace_run = p->estimate_figures[5];
  }
  pthread_mutex_unlock(&p->runs_lock);
  if (hit) return SF_OK;

  dry_set s;
  memset(&s, 0, sizeof s);
  sf_status st = dry_build(p, &s, d);
  sf_plan *pl = st == SF_OK ? sf_plan_create() : NULL;
  if (st == SF_OK && pl == NULL) st = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "memory estimate: out of memory");
  /* The workspace: the largest plan the generation runs (ws_net: each network's own plan; the
   * decoder's and encoder's whichever kind runs). */
  uint64_t ws = 0, ws_net[NET_COUNT] = {0};
  if (st == SF_OK && uses_text && (st = sf_clip_text_plan(s.text, pl, 1, tokens, threads, d)) == SF_OK)
    ws_net[NET_TEXT] = plan_bytes(pl);
  if (st == SF_OK && (st = sf_unet_plan(s.unet, pl, batch, h, w, tokens, threads, d)) == SF_OK)
    ws_net[NET_UNET] = plan_bytes(pl);
  if (st == SF_OK) {
    st = decoder == SF_NET_VAE_DECODER ? sf_vae_plan(s.vae_dec, pl, 0, 1, h, w, threads, d)
                                       : sf_taesd_plan(p->taesd, pl, 0, 1, h, w, threads, d);
    if (st == SF_OK) ws_net[NET_VAE_DEC] = plan_bytes(pl);
  }
  if (st == SF_OK && encoder) {
    st = encoder == SF_NET_VAE_ENCODER ? sf_vae_plan(s.vae_enc, pl, 1, 1, (size_t)H, (size_t)W, threads, d)
                                       : sf_taesd_plan(p->taesd, pl, 1, 1, (size_t)H, (size_t)W, threads, d);
    if (st == SF_OK) ws_net[NET_VAE_ENC] = plan_bytes(pl);
  }
  for (int i = 0; i < NET_COUNT; i++) ws = max64(ws, ws_net[i]);
  sf_plan_destroy(pl);
  if (st != SF_OK) {
    dry_free(&s);
    return st;
  }

  /* The run's own buffers (pipeline/job.c): latents, noise, the UNet's input and output, the
   * text conditioning; the decoded image as float and as bytes, an init image as float; the
   * finished images of a batch. */
  const uint64_t n = (uint64_t)latent_c * h * w, px = (uint64_t)H * (uint64_t)W;
  const uint64_t hidden = p->unet_cfg.cross_attention_dim;
  uint64_t run = (2 * n + 2 * batch * n + batch * tokens * hidden) * sizeof(float) + 3 * px * sizeof(float) + 3 * px;
  if (rq->init_rgb) run += 3 * px * sizeof(float) + 3 * px;
  run += (uint64_t)(rq->batch_count > 1 ? rq->batch_count - 1 : 0) * 3 * px;

  uint64_t taesd = p->taesd ? graph_weights(sf_taesd_decoder_graph(p->taesd)) +
                                  graph_weights(sf_taesd_encoder_graph(p->taesd))
                            : 0;
  uint64_t all = 0;
  for (int i = 0; i < NET_COUNT; i++) all += s.net[i].weights;
  /* The VAE is built in one go when resident: its two parts' staging is shared. */
  net_figures vae = {s.net[NET_VAE_DEC].present || s.net[NET_VAE_ENC].present,
                     s.net[NET_VAE_DEC].weights + s.net[NET_VAE_ENC].weights,
                     max64(s.net[NET_VAE_DEC].transient, s.net[NET_VAE_ENC].transient)};

  uint64_t peak = 0, peak_weights = 0, peak_ws = 0;
  if (!p->low_memory) {
    /* the load, network by network, in the order they are built */
    const net_figures order[3] = {s.net[NET_TEXT], s.net[NET_UNET], vae};
    uint64_t resident = 0;
    for (int i = 0; i < 3; i++) {
      if (!order[i].present) continue;
      resident += order[i].weights;
      if (resident + order[i].transient > peak) {
        peak = resident + order[i].transient;
        peak_weights = resident;
        peak_ws = 0;
      }
    }
    if (all + ws + run > peak) {
      peak = all + ws + run;
      peak_weights = all;
      peak_ws = ws;
    }
  } else {
    /* One network at a time. A build starts with the run's workspace pages given back
     * (pipeline/networks.c), so a network holds its weights plus either its build's staging or
     * its own plan's pages. TAESD (always resident) decodes after the UNet's steps, on the
     * UNet's resident weights and touched pages; a TAESD encoder runs first, possibly next to the
     * previous generation's last network and workspace: counted as the largest of each. */
    const int used[NET_COUNT] = {uses_text, 1, decoder == SF_NET_VAE_DECODER, encoder == SF_NET_VAE_ENCODER};
    uint64_t w_max = 0;
    for (int i = 0; i < NET_COUNT; i++) {
      if (!used[i] || !s.net[i].present) continue;
      w_max = max64(w_max, s.net[i].weights);
      const uint64_t own = max64(s.net[i].transient, ws_net[i]);
      if (s.net[i].weights + own + run > peak) {
        peak = s.net[i].weights + own + run;
        peak_weights = s.net[i].weights;
        peak_ws = ws_net[i] >= s.net[i].transient ? ws_net[i] : 0;
      }
    }
    uint64_t at = 0, at_ws = 0;
    if (decoder != SF_NET_VAE_DECODER) {
      at_ws = max64(ws_net[NET_UNET], ws_net[NET_VAE_DEC]);
      at = s.net[NET_UNET].weights + at_ws + run;
      if (at > peak) {
        peak = at;
        peak_weights = s.net[NET_UNET].weights;
        peak_ws = at_ws;
      }
    }
    if (encoder != 0 && encoder != SF_NET_VAE_ENCODER && w_max + ws + run > peak) {
      peak = w_max + ws + run;
      peak_weights = w_max;
      peak_ws = ws;
    }
  }
  peak += taesd + SF_ESTIMATE_BASE_BYTES;
  peak_weights += taesd;
  out->peak = peak;
  out->weights = peak_weights;
  out->workspace = peak_ws;
  out->other = peak - peak_weights - peak_ws;
  out->weights_total = all + taesd;
  out->workspace_run = ws;
  dry_free(&s);
  pthread_mutex_lock(&p->runs_lock);
  memcpy(p->estimate_key, key, sizeof key);
  const uint64_t figures[6] = {out->peak, out->weights, out->workspace, out->other, out->weights_total, out->workspace_run};
  memcpy(p->estimate_figures, figures, sizeof figures);
  p->estimate_valid = 1;
  pthread_mutex_unlock(&p->runs_lock);
  return SF_OK;
}
