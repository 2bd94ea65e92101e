/* sf_pipeline_*: loading a model folder (or a set of files in memory), describing it, and
 * what it tells about itself. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/files.h"
#include "core/params.h"
#include "graph/wsrc.h"
#include "io/pack.h"
#include "io/single_file.h"
#include "models/vae.h"
#include "pipeline/engine.h"
#include "pipeline/estimate.h"
#include "pipeline/pack.h"
#include "pipeline/request.h"

#define SF_ALL_NETWORKS                                                                              \
  (SF_NET_TEXT_ENCODER | SF_NET_UNET | SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER | SF_NET_TAESD_DECODER | \
   SF_NET_TAESD_ENCODER)

/* 1 if dir/name is a file of fs, 0 if not, -1 when out of memory. */
static int file_exists(const sf_vfs *fs, const char *dir, const char *name) {
  char *path = sf_vfs_join(fs, dir, name);
  if (path == NULL) return -1;
  int found = sf_vfs_is_file(fs, path);
  free(path);
  return found;
}

/* The role a component folder plays, from its class. */
static const char *role_of_class(const char *cls) {
  static const struct { const char *cls, *role; } roles[] = {
      {"UNet2DConditionModel", "unet"}, {"AutoencoderKL", "vae"},        {"CLIPTextModel", "text_encoder"},
      {"AutoencoderTiny", "taesd"},     {"CLIPTokenizer", "tokenizer"}, {NULL, NULL}};
  for (size_t i = 0; cls && roles[i].cls; i++)
    if (strcmp(cls, roles[i].cls) == 0) return roles[i].role;
  return NULL;
}

/* A pipeline folder (model_index.json), or one component by itself: a model folder with
 * config.json, a tokenizer folder (vocab.json + merges.txt), or TAESD's raw weight files
 * (taesd_decoder.safetensors / taesd_encoder.safetensors). dir: a path in fs ("" is a memory
 * set's root). */
static sf_model_folder *open_any(const sf_vfs *fs, const char *dir, const char *variant, unsigned flags,
                                 const char *config_dir, sf_diag *d) {
  /* one checkpoint file (the original LDM layout), with or without a config folder */
  if (*dir && sf_single_file_is(fs, dir)) {
    if (variant != NULL) {
      sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_VARIANT \"%.64s\" is for model folders; %s%s is one file",
                  variant, sf_vfs_label(fs), dir);
      return NULL;
    }
    return sf_single_file_open(fs, dir, config_dir, flags, d);
  }
  if (config_dir != NULL && !sf_vfs_is_memory(fs)) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                "SF_PARAM_CONFIG_PATH is for single-file checkpoints; %s is not a file", dir);
    return NULL;
  }
  /* What the folder holds (an allocation failure must not pass for a missing file). */
  const int has_index = file_exists(fs, dir, "model_index.json"), has_config = file_exists(fs, dir, "config.json"),
            has_vocab = file_exists(fs, dir, "vocab.json"),
            has_taesd_dec = file_exists(fs, dir, "taesd_decoder.safetensors"),
            has_taesd_enc = file_exists(fs, dir, "taesd_encoder.safetensors");
  if (has_index < 0 || has_config < 0 || has_vocab < 0 || has_taesd_dec < 0 || has_taesd_enc < 0) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory looking for the folder's files");
    return NULL;
  }
  if (config_dir != NULL && (has_index || has_config || has_vocab || has_taesd_dec || has_taesd_enc)) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_CONFIG_PATH is for single-file checkpoints; the set holds a folder");
    return NULL;
  }
  if (has_index) return sf_model_folder_open_vfs(fs, dir, variant, flags, d);
  if (has_config || has_vocab) {
    sf_component *c = sf_component_open_vfs(fs, dir, variant, d);
    if (c == NULL) return NULL;
    const char *cls = c->class_name;
    if (cls == NULL) /* transformers configs name their class in "architectures" */
      cls = sf_json_as_string(sf_json_at(sf_json_get(sf_component_config(c), "architectures"), 0));
    const char *role = c->kind == SF_COMPONENT_TOKENIZER ? "tokenizer" : role_of_class(cls);
    if (role == NULL) {
      const int mem = sf_vfs_is_memory(fs);
      sf_diag_set(d, SF_ERR_UNSUPPORTED, "%s%s%s: unsupported: component class %s", mem ? "memory" : "",
                  mem && *dir ? ":" : "", dir, cls ? cls : "(no _class_name or architectures)");
      sf_component_close(c);
      return NULL;
    }
    return sf_model_folder_from_component_vfs(fs, c, role, d);
  }
  if (has_taesd_dec || has_taesd_enc) {
    sf_component *c = calloc(1, sizeof *c);
    if (c == NULL || (c->dir = strdup(dir)) == NULL || (c->name = strdup("taesd")) == NULL) {
      sf_component_close(c);
      sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
      return NULL;
    }
    c->kind = SF_COMPONENT_MODEL;
    return sf_model_folder_from_component_vfs(fs, c, "taesd", d);
  }
  /* a set of files in memory holding one .safetensors file (a single-file checkpoint) */
  if (sf_vfs_is_memory(fs) && *dir == '\0') {
    char **names = NULL;
    unsigned char *is_dir = NULL;
    size_t n = 0;
    if (sf_vfs_list(fs, "", &names, &is_dir, &n, d) != SF_OK) return NULL;
    size_t len = n == 1 && !is_dir[0] ? strlen(names[0]) : 0;
    sf_model_folder *m = NULL;
    if (len > 12 && strcmp(names[0] + len - 12, ".safetensors") == 0) {
      if (variant != NULL)
        sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_VARIANT \"%.64s\" is for model folders; the set holds one file",
                    variant);
      else
        m = sf_single_file_open(fs, names[0], config_dir, flags, d);
      sf_vfs_list_free(names, is_dir, n);
      return m;
    }
    sf_vfs_list_free(names, is_dir, n);
  }
  if (config_dir != NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_CONFIG_PATH is for single-file checkpoints; %s%s is not one",
                sf_vfs_is_memory(fs) ? "memory:" : "", dir);
    return NULL;
  }
  return sf_model_folder_open_vfs(fs, dir, variant, flags, d); /* reports what is missing */
}

/* SF_PARAM_INSPECT_ONLY: every network checked against its checkpoint without packing anything,
 * every problem found logged and counted in the error (whose message holds as many as fit). */
static sf_status inspect(sf_pipeline *p, const sf_vfs *fs, unsigned networks, const char *taesd_path, sf_diag *d) {
  sf_problems pr = {0};
  sf_status s = sf_pipeline_inspect_networks(p, networks, &pr, d);
  unsigned taesd = 0;
  if (s == SF_OK && sf_pipeline_load_taesd(p, fs, networks, taesd_path, &taesd, d) != SF_OK) {
    if (d->status == SF_ERR_OUT_OF_MEMORY) s = d->status;
    else sf_problems_add(&pr, "%s", d->msg);
    sf_diag_clear(d);
  }
  p->configured |= taesd;
  if (s == SF_OK && sf_problems_count(&pr) > 0) {
    /* one line per problem when there are several (the error, logged as every error is, counts
     * them and holds as many as fit); a single one is the error */
    for (size_t i = 0; sf_problems_count(&pr) > 1 && i < pr.n; i++) sf_ctx_log(p->ctx, SF_LOG_ERROR, "%s", pr.msg[i]);
    if (pr.dropped) sf_ctx_log(p->ctx, SF_LOG_ERROR, "%zu more problems", pr.dropped);
    s = sf_problems_summary(&pr, SF_ERR_BAD_MODEL, "", d);
  }
  sf_problems_free(&pr);
  return s;
}

/* sf_pipeline_load and sf_pipeline_load_files: the folder dir of fs. fn names the public
 * function in messages about its arguments. */
static sf_status load(sf_context *ctx, const sf_vfs *fs, const char *dir, const sf_params *options,
                      sf_pipeline **out_pipeline, const char *fn) {
  const int components_given = sf_params_int_or(options, SF_PARAM_COMPONENTS, -1) != -1;
  int64_t networks = sf_params_int_or(options, SF_PARAM_COMPONENTS, SF_ALL_NETWORKS);
  if (networks <= 0 || (networks & ~(int64_t)SF_ALL_NETWORKS) != 0)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_COMPONENTS: %lld is not a set of sf_network bits",
                        (long long)networks);
  int64_t wtype = sf_params_int_or(options, SF_PARAM_WEIGHT_TYPE, SF_WEIGHT_DEFAULT);
  if (wtype < SF_WEIGHT_DEFAULT || wtype > SF_WEIGHT_Q8)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_WEIGHT_TYPE: %lld is not a sf_weight_type",
                        (long long)wtype);
  const int64_t backend = sf_params_int_or(options, SF_PARAM_GEMM_BACKEND, 0);
  if (backend != 0 && backend != 1)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT,
                        "SF_PARAM_GEMM_BACKEND: %lld is neither 0 (the library's kernels) nor 1 (XNNPACK)",
                        (long long)backend);
  double unet_guidance = sf_params_float_or(options, SF_PARAM_UNET_GUIDANCE, SF_LCM_DEFAULT_GUIDANCE);
  if (!isfinite(unet_guidance) || fabs(unet_guidance) > FLT_MAX)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_UNET_GUIDANCE %g is not a finite float", unet_guidance);
  sf_pipeline *p = calloc(1, sizeof *p);
  if (p == NULL) return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  p->ctx = ctx;
  p->xnnpack_gemm = backend == 1;
  p->unet_guidance = unet_guidance;
  static const sf_weight_policy policies[] = {SF_WEIGHTS_AS_STORED, SF_WEIGHTS_FORCE_F32, SF_WEIGHTS_FORCE_F16,
                                              SF_WEIGHTS_FORCE_Q8};
  p->weight_policy = policies[wtype];
  if (pthread_mutex_init(&p->runs_lock, NULL) != 0) {
    free(p);
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  if (pthread_mutex_init(&p->resident_lock, NULL) != 0) {
    pthread_mutex_destroy(&p->runs_lock);
    free(p);
    return sf_ctx_error(ctx, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  p->low_memory = sf_params_int_or(options, SF_PARAM_LOW_MEMORY, 0) != 0;
  p->random_weights = sf_params_int_or(options, SF_PARAM_RANDOM_WEIGHTS, 0) != 0;
  p->random_seed = (uint64_t)sf_params_int_or(options, SF_PARAM_RANDOM_SEED, 0);
  p->inspect_only = sf_params_int_or(options, SF_PARAM_INSPECT_ONLY, 0) != 0;
  sf_diag d = {0};
  /* A pack file: opened (and checked against this CPU and the options) before the folder, whose
   * networks it may narrow down (without SF_PARAM_COMPONENTS: the pack's). */
  const char *pack_path = sf_params_string_or(options, SF_PARAM_PACK_PATH, NULL);
  if (pack_path != NULL) {
    sf_status ps = SF_OK;
    if (p->random_weights)
      ps = sf_diag_set(&d, SF_ERR_INVALID_ARGUMENT,
                       "SF_PARAM_PACK_PATH and SF_PARAM_RANDOM_WEIGHTS exclude each other (a pack holds weights)");
    else if (p->inspect_only)
      ps = sf_diag_set(&d, SF_ERR_UNSUPPORTED,
                       "SF_PARAM_PACK_PATH with SF_PARAM_INSPECT_ONLY is not supported: load the pack to check it");
    else if (sf_pipeline_open_pack(p, pack_path, wtype, &d) == SF_OK && !components_given) {
      unsigned nets = (unsigned)networks;
      sf_pipeline_pack_networks(p, &nets, 0, &d);
      networks = nets;
    }
    if (ps == SF_OK) ps = d.status;
    if (ps != SF_OK) {
      sf_pipeline_destroy(p);
      return sf_ctx_take_diag(ctx, &d);
    }
  }
  const char *tokenizer_dir = sf_params_string_or(options, SF_PARAM_TOKENIZER_PATH, NULL);
  /* The folder's tokenizer is needed only to encode prompts, i.e. with the text encoder and
   * without a tokenizer named elsewhere; config-only folders list one they do not ship. */
  const int need_tokenizer = tokenizer_dir == NULL && (networks & SF_NET_TEXT_ENCODER);
  p->folder = open_any(fs, dir, sf_params_string_or(options, SF_PARAM_VARIANT, NULL),
                       need_tokenizer ? 0 : SF_FOLDER_TOKENIZER_OPTIONAL,
                       sf_params_string_or(options, SF_PARAM_CONFIG_PATH, NULL), &d);
  if (p->folder == NULL) {
    sf_pipeline_destroy(p);
    return sf_ctx_take_diag(ctx, &d);
  }
  if (p->pack != NULL) {
    unsigned nets = (unsigned)networks;
    if ((components_given && sf_pipeline_pack_networks(p, &nets, 1, &d) != SF_OK) ||
        sf_pipeline_check_pack_configs(p, nets, &d) != SF_OK) {
      sf_pipeline_destroy(p);
      return sf_ctx_take_diag(ctx, &d);
    }
  }
  for (size_t i = 0; i < p->folder->n_components; i++)
    if (p->folder->components[i].note)
      sf_ctx_log(ctx, SF_LOG_INFO, "%s: %s", p->folder->components[i].name, p->folder->components[i].note);
  if (sf_pipeline_load_tokenizer(p, fs, tokenizer_dir, &d) != SF_OK) {
    sf_pipeline_destroy(p);
    return sf_ctx_take_diag(ctx, &d);
  }
  const char *loras = sf_params_string_or(options, SF_PARAM_LORAS, NULL);
  if (loras != NULL && sf_pipeline_open_loras(p, loras, (unsigned)networks, &d) != SF_OK) {
    sf_pipeline_destroy(p);
    return sf_ctx_take_diag(ctx, &d);
  }
  const char *taesd_path = sf_params_string_or(options, SF_PARAM_TAESD_PATH, NULL);
  sf_status s = p->inspect_only ? inspect(p, fs, (unsigned)networks, taesd_path, &d)
                                : sf_pipeline_build_networks(p, fs, (unsigned)networks, taesd_path, &d);
  if (s != SF_OK) {
    sf_pipeline_destroy(p);
    return sf_ctx_take_diag(ctx, &d);
  }
  *out_pipeline = p;
  return SF_OK;
}

sf_status sf_pipeline_load(sf_context *ctx, const char *model_dir, const sf_params *options,
                           sf_pipeline **out_pipeline) {
  if (out_pipeline) *out_pipeline = NULL;
  if (ctx == NULL || model_dir == NULL || out_pipeline == NULL)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_load: NULL argument");
  return load(ctx, sf_vfs_os(), model_dir, options, out_pipeline, "sf_pipeline_load");
}

sf_status sf_pipeline_load_files(sf_context *ctx, const sf_files *files, const sf_params *options,
                                 sf_pipeline **out_pipeline) {
  if (out_pipeline) *out_pipeline = NULL;
  if (ctx == NULL || files == NULL || out_pipeline == NULL)
    return sf_ctx_error(ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_load_files: NULL argument");
  /* The set's root; its files are read during the load only (weights stay referenced). */
  return load(ctx, sf_files_vfs(files), "", options, out_pipeline, "sf_pipeline_load_files");
}

void sf_pipeline_destroy(sf_pipeline *pipeline) {
  if (pipeline == NULL) return;
  sf_run_free_idle(pipeline);
  sf_pipeline_free_networks(pipeline);
  sf_pack_close(pipeline->pack); /* after the networks, which point into it */
  sf_lora_set_close(pipeline->loras);
  sf_model_folder_close(pipeline->folder);
  pthread_mutex_destroy(&pipeline->resident_lock);
  pthread_mutex_destroy(&pipeline->runs_lock);
  free(pipeline);
}

sf_status sf_pipeline_get_int(const sf_pipeline *cp, sf_info key, int64_t *out) {
  if (cp == NULL || out == NULL)
    return sf_ctx_error(cp ? cp->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_int: NULL argument");
  /* The run-state bookkeeping is the one mutable part of a pipeline (under its lock). */
  sf_pipeline *p = (sf_pipeline *)cp;
  switch (key) {
    case SF_INFO_NETWORKS: *out = p->networks; return SF_OK;
    case SF_INFO_TEXT_TOKENS: *out = SF_CLIP_TOKENS; return SF_OK;
    case SF_INFO_TEXT_HIDDEN:
      if (!(p->configured & (SF_NET_TEXT_ENCODER | SF_NET_UNET))) break;
      *out = (int64_t)((p->configured & SF_NET_TEXT_ENCODER) ? sf_engine_text_hidden(p) : sf_engine_unet_text_hidden(p));
      return SF_OK;
    case SF_INFO_LATENT_CHANNELS:
      if (sf_engine_latent_channels(p) == 0) break;
      *out = (int64_t)sf_engine_latent_channels(p);
      return SF_OK;
    case SF_INFO_DEFAULT_WIDTH:
    case SF_INFO_DEFAULT_HEIGHT: *out = sf_engine_default_size(p); return SF_OK;
    case SF_INFO_ARENA_BYTES: *out = (int64_t)sf_run_workspace_bytes(p); return SF_OK;
    case SF_INFO_PARAMETERS: *out = (int64_t)p->parameters; return SF_OK;
    case SF_INFO_SIZE_MULTIPLE: *out = (int64_t)sf_engine_size_multiple(p); return SF_OK;
    case SF_INFO_ACTIVE_RUNS: *out = (int64_t)sf_run_count_active(p); return SF_OK;
    case SF_INFO_WEIGHT_BYTES: *out = (int64_t)sf_engine_weight_bytes(p); return SF_OK;
    case SF_INFO_WEIGHT_TYPE:
      if (!(p->configured & SF_NET_UNET)) break;
      *out = (int64_t)sf_engine_weight_type(p);
      return SF_OK;
    case SF_INFO_SCALE_FACTOR:
      if (!(p->configured & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER | SF_NET_TAESD_DECODER | SF_NET_TAESD_ENCODER)))
        break;
      *out = (int64_t)sf_engine_default_scale_factor(p);
      return SF_OK;
    case SF_INFO_VAE_SCALE:
    case SF_INFO_LAST_MACS:
    case SF_INFO_LAST_ATTENTION_MACS:
      return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_int: %d is a float (sf_pipeline_get_float)",
                          (int)key);
  }
  if ((int)key < SF_INFO_NETWORKS || (int)key > SF_INFO_WEIGHT_TYPE)
    return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_int: %d is not a sf_info key", (int)key);
  return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "sf_pipeline_get_int: %d is not available for this pipeline", (int)key);
}

sf_status sf_pipeline_get_float(const sf_pipeline *cp, sf_info key, double *out) {
  if (cp == NULL || out == NULL)
    return sf_ctx_error(cp ? cp->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_float: NULL argument");
  sf_pipeline *p = (sf_pipeline *)cp;
  if (key == SF_INFO_VAE_SCALE) {
    if (!(p->configured & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER)))
      return sf_ctx_error(p->ctx, SF_ERR_BAD_STATE, "sf_pipeline_get_float: no VAE");
    *out = p->vae_cfg.scaling_factor;
    return SF_OK;
  }
  if (key == SF_INFO_LAST_MACS || key == SF_INFO_LAST_ATTENTION_MACS) {
    pthread_mutex_lock(&p->runs_lock);
    *out = key == SF_INFO_LAST_MACS ? p->last_macs : p->last_attention_macs;
    pthread_mutex_unlock(&p->runs_lock);
    return SF_OK;
  }
  return sf_ctx_error(p->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_get_float: %d is not a float info key", (int)key);
}

sf_status sf_pipeline_describe(const sf_pipeline *pipeline, sf_format format, char *buffer, size_t capacity,
                               size_t *out_needed) {
  if (pipeline == NULL || (buffer == NULL && capacity > 0))
    return sf_ctx_error(pipeline ? pipeline->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_describe: NULL argument");
  if (format != SF_FORMAT_TEXT && format != SF_FORMAT_JSON)
    return sf_ctx_error(pipeline->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_describe: unknown format %d", (int)format);
  char *text = sf_pipeline_describe_alloc(pipeline, format);
  if (text == NULL) return sf_ctx_error(pipeline->ctx, SF_ERR_OUT_OF_MEMORY, "sf_pipeline_describe: out of memory");
  size_t len = strlen(text);
  if (out_needed) *out_needed = len + 1;
  if (capacity > 0) {
    size_t n = len < capacity - 1 ? len : capacity - 1;
    memcpy(buffer, text, n);
    buffer[n] = '\0';
  }
  free(text);
  return SF_OK;
}

sf_status sf_pipeline_estimate_memory(const sf_pipeline *cp, const sf_params *params, sf_memory what,
                                      int64_t *out_bytes) {
  if (out_bytes) *out_bytes = 0;
  if (cp == NULL || out_bytes == NULL)
    return sf_ctx_error(cp ? cp->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_estimate_memory: NULL argument");
  if ((int)what < SF_MEMORY_PEAK || (int)what > SF_MEMORY_WORKSPACE_RUN)
    return sf_ctx_error(cp->ctx, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_estimate_memory: %d is not a sf_memory figure",
                        (int)what);
  sf_pipeline *p = (sf_pipeline *)cp; /* dry builds take the residency lock */
  sf_diag d = {0};
  sf_request rq;
  if (sf_request_from_params(params, &rq, &d) != SF_OK) return sf_ctx_take_diag(p->ctx, &d);
  pthreadpool_t pool = sf_ctx_pool_acquire(p->ctx);
  size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
  sf_ctx_pool_release(p->ctx);
  sf_memory_figures m;
  if (sf_pipeline_estimate(p, &rq, threads, &m, &d) != SF_OK) return sf_ctx_take_diag(p->ctx, &d);
  const uint64_t v[] = {m.peak, m.weights, m.workspace, m.other, m.weights_total, m.workspace_run};
  *out_bytes = (int64_t)v[what];
  return SF_OK;
}

sf_status sf_pipeline_write_pack(const sf_pipeline *pipeline, const char *path) {
  if (pipeline == NULL || path == NULL)
    return sf_ctx_error(pipeline ? pipeline->ctx : NULL, SF_ERR_INVALID_ARGUMENT, "sf_pipeline_write_pack: NULL argument");
  sf_diag d = {0};
  if (sf_pipeline_write_pack_file(pipeline, path, &d) != SF_OK) return sf_ctx_take_diag(pipeline->ctx, &d);
  return SF_OK;
}
