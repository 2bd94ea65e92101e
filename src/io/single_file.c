#define _POSIX_C_SOURCE 200809L /* strdup */
#include "core/str.h"
#include "io/single_file.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/ldm_config.h"
#include "io/ldm_keys.h"

static sf_status oom(sf_diag *d) { return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory"); }

int sf_single_file_is(const sf_vfs *fs, const char *path) { return sf_vfs_is_file(fs, path); }

static int ends_with_ci(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  if (a < b) return 0;
  for (size_t i = 0; i < b; i++)
    if (tolower((unsigned char)s[a - b + i]) != suffix[i]) return 0;
  return 1;
}

/* PyTorch's formats: a zip archive (torch.save since 1.6) or a raw pickle (protocol 2+ starts
 * with 0x80). Refused without reading further. */
static sf_status refuse_pickle(const sf_vfs *fs, const char *path, sf_diag *d) {
  static const char *const exts[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl", NULL};
  int pickle = 0;
  for (size_t i = 0; exts[i] && !pickle; i++) pickle = ends_with_ci(path, exts[i]);
  if (!pickle) {
    int err = 0;
    sf_vfs_file *f = sf_vfs_open(fs, path, &err);
    unsigned char head[4] = {0};
    size_t n = f ? sf_vfs_read(f, head, sizeof head) : 0;
    if (f) sf_vfs_close(f);
    pickle = (n == 4 && memcmp(head, "PK\x03\x04", 4) == 0) || (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5);
  }
  if (!pickle) return SF_OK;
  return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                     "%s%s: a PyTorch pickle checkpoint, which is never unpickled (it can run code); convert it to "
                     ".safetensors (e.g. with safetensors' convert script, or diffusers' from_single_file then "
                     "save_pretrained)",
                     sf_vfs_label(fs), path);
}

/* ---- one component's view --------------------------------------------------------------------------- */

typedef struct part_keys {
  const sf_st_tensor **t; /* the file's tensors of the component (EMA copies where taken) */
  const char **keys;      /* their keys under the component's prefix (model.diffusion_model.* for EMA too) */
  size_t n;
} part_keys;

static sf_weights *make_view(sf_st_shared *file, sf_ldm_part part, const part_keys *pk, sf_diag *d) {
  sf_ldm_name *names = calloc(pk->n ? pk->n : 1, sizeof *names);
  sf_st_tensor *copies = calloc(pk->n ? pk->n : 1, sizeof *copies);
  const sf_st_tensor **ptrs = calloc(pk->n ? pk->n : 1, sizeof *ptrs);
  const char **nm = calloc(pk->n ? pk->n : 1, sizeof *nm);
  sf_weights *w = NULL;
  if (names == NULL || copies == NULL || ptrs == NULL || nm == NULL) {
    oom(d);
  } else if (sf_ldm_map(part, pk->keys, pk->n, names, d) == SF_OK) {
    for (size_t i = 0; i < pk->n; i++) {
      copies[i] = *pk->t[i];
      /* VAE attention projections: 1x1 convolutions in the file, linear layers to the builder */
      if (names[i].squeeze && copies[i].ndim == 4 && copies[i].shape[2] == 1 && copies[i].shape[3] == 1)
        copies[i].ndim = 2;
      ptrs[i] = &copies[i];
      nm[i] = names[i].name;
    }
    w = sf_weights_view(file, ptrs, nm, pk->n, d);
    sf_ldm_names_free(names, pk->n);
  }
  free(names);
  free(copies);
  free(ptrs);
  free(nm);
  return w;
}

/* ---- the file ------------------------------------------------------------------------------------- */

typedef struct sf_parts {
  part_keys p[3]; /* UNet, VAE, text encoder */
  int ema_taken;
  size_t n_ema, n_ignored;
} sf_parts;

static void parts_free(sf_parts *ps) {
  for (int i = 0; i < 3; i++) {
    free(ps->p[i].t);
    free(ps->p[i].keys);
  }
}

/* Sorts every tensor of st into its component; unknown keys and EMA copies that fit nothing are
 * errors naming them. */
static sf_status sort_keys(const sf_safetensors *st, sf_parts *ps, sf_diag *d) {
  const size_t n = sf_st_count(st);
  memset(ps, 0, sizeof *ps);
  for (int i = 0; i < 3; i++) {
    ps->p[i].t = calloc(n ? n : 1, sizeof *ps->p[i].t);
    ps->p[i].keys = calloc(n ? n : 1, sizeof *ps->p[i].keys);
    if (ps->p[i].t == NULL || ps->p[i].keys == NULL) return oom(d);
  }
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = sf_st_tensor_at(st, i);
    sf_ldm_part part = sf_ldm_classify(t->name);
    if (part == SF_LDM_UNET || part == SF_LDM_VAE || part == SF_LDM_TEXT) {
      part_keys *pk = &ps->p[part - SF_LDM_UNET];
      pk->t[pk->n] = t;
      pk->keys[pk->n++] = t->name;
    } else if (part == SF_LDM_EMA) {
      ps->n_ema++;
    } else if (part == SF_LDM_IGNORED) {
      ps->n_ignored++;
    } else {
      const char *why = "";
      if (strncmp(t->name, "cond_stage_model.model.", 23) == 0) why = " (an OpenCLIP text encoder: SD-2.x, not supported)";
      else if (strncmp(t->name, "conditioner.", 12) == 0) why = " (SDXL's conditioners: not supported)";
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "tensor \"%s\" is not part of an SD-1.x single-file checkpoint (model.diffusion_model.*, "
                         "first_stage_model.*, cond_stage_model.transformer.*, model_ema.*)%s",
                         t->name, why);
    }
  }
  if (ps->n_ema == 0) return SF_OK;
  /* The EMA copy replaces the UNet's tensors one for one. */
  part_keys *u = &ps->p[0];
  if (u->n == 0)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                       "the file holds EMA weights (model_ema.*) without the model.diffusion_model.* tensors that name "
                       "their places; such files are not supported");
  size_t matched = 0;
  for (size_t i = 0; i < u->n; i++) {
    char *ek = sf_ldm_ema_key(u->keys[i]);
    if (ek == NULL) return oom(d);
    const sf_st_tensor *e = sf_st_find(st, ek);
    if (e == NULL) {
      sf_status s = sf_diag_set(d, SF_ERR_BAD_MODEL, "the file holds EMA weights but no \"%s\" for \"%s\"", ek,
                                u->keys[i]);
      free(ek);
      return s;
    }
    free(ek);
    int same = e->ndim == u->t[i]->ndim;
    for (int k = 0; same && k < e->ndim; k++) same = e->shape[k] == u->t[i]->shape[k];
    if (!same)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "EMA tensor \"%s\" and \"%s\" differ in shape", e->name, u->keys[i]);
    u->t[i] = e;
    matched++;
  }
  if (matched != ps->n_ema) {
    /* some model_ema.* tensor stands for no model.diffusion_model.* one: name it */
    for (size_t i = 0; i < sf_st_count(st); i++) {
      const sf_st_tensor *t = sf_st_tensor_at(st, i);
      if (sf_ldm_classify(t->name) != SF_LDM_EMA) continue;
      int found = 0;
      for (size_t j = 0; j < u->n && !found; j++) found = u->t[j] == t;
      if (!found)
        return sf_diag_set(d, SF_ERR_BAD_MODEL, "EMA tensor \"%s\" matches no model.diffusion_model.* tensor", t->name);
    }
  }
  ps->ema_taken = 1;
  return SF_OK;
}

static const struct {
  const char *name, *library, *cls;
  sf_ldm_part part;
} COMPONENTS[3] = {{"unet", "diffusers", "UNet2DConditionModel", SF_LDM_UNET},
                   {"vae", "diffusers", "AutoencoderKL", SF_LDM_VAE},
                   {"text_encoder", "transformers", "CLIPTextModel", SF_LDM_TEXT}};


/* Fills in the file's part of component c (weights, weights_file, note). */
static sf_status attach(sf_component *c, int i, sf_st_shared *file, const sf_parts *ps, sf_diag *d) {
  c->weights = make_view(file, COMPONENTS[i].part, &ps->p[i], d);
  if (c->weights == NULL) return d->status;
  c->weights_file = sf_str_printf("%s*", sf_ldm_prefix(COMPONENTS[i].part));
  free(c->note);
  c->note = NULL;
  if (i == 0)
    c->note = ps->ema_taken ? sf_str_printf("the EMA weights (model_ema.*, %zu tensors) were taken; the non-EMA "
                                         "model.diffusion_model.* ones are ignored", ps->p[0].n)
                            : sf_str_printf("the file has no EMA copy (model_ema.*): model.diffusion_model.* taken");
  if (c->weights_file == NULL || (i == 0 && c->note == NULL)) return oom(d);
  c->config_only = 0;
  return SF_OK;
}

/* Configs inferred from the shapes: one component per part the file holds. */
static sf_status inferred_folder(sf_model_folder *m, const char *path, sf_st_shared *file, const sf_parts *ps,
                                 sf_diag *d) {
  m->components = calloc(3, sizeof *m->components);
  if (m->components == NULL) return oom(d);
  for (int i = 0; i < 3; i++) {
    if (ps->p[i].n == 0) continue;
    sf_component *c = &m->components[m->n_components++];
    c->name = strdup(COMPONENTS[i].name);
    c->library = strdup(COMPONENTS[i].library);
    c->class_name = strdup(COMPONENTS[i].cls);
    c->dir = strdup(path);
    c->kind = SF_COMPONENT_MODEL;
    if (c->name == NULL || c->library == NULL || c->class_name == NULL || c->dir == NULL) return oom(d);
    sf_status s = attach(c, i, file, ps, d);
    if (s != SF_OK) return s;
    char *text = i == 0 ? sf_ldm_unet_config(c->weights, d)
                 : i == 1 ? sf_ldm_vae_config(c->weights, d)
                          : sf_ldm_text_config(c->weights, d);
    if (text == NULL) return d->status;
    c->config = sf_json_parse(text, strlen(text), d);
    free(text);
    if (c->config == NULL) return d->status == SF_OK ? oom(d) : d->status;
  }
  return SF_OK;
}

/* The config folder's components, with the file's weights; those the file lacks are left out. */
static sf_status configured_folder(sf_model_folder *m, const char *config_dir, sf_st_shared *file,
                                   const sf_parts *ps, sf_diag *d) {
  for (int i = 0; i < 3; i++) {
    sf_component *c = NULL;
    for (size_t k = 0; k < m->n_components; k++)
      if (strcmp(m->components[k].name, COMPONENTS[i].name) == 0) c = &m->components[k];
    if (c == NULL) {
      if (ps->p[i].n == 0) continue;
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "the file holds a %s (%s*) but the config folder %s has no %s component",
                         COMPONENTS[i].name, sf_ldm_prefix(COMPONENTS[i].part), config_dir, COMPONENTS[i].name);
    }
    if (ps->p[i].n == 0) { /* not in the file: left out */
      sf_component_clear(c);
      size_t k = (size_t)(c - m->components);
      memmove(c, c + 1, (m->n_components - k - 1) * sizeof *c);
      m->n_components--;
      continue;
    }
    if (c->kind != SF_COMPONENT_MODEL)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "config folder %s: %s is not a model component", config_dir,
                         COMPONENTS[i].name);
    sf_status s = attach(c, i, file, ps, d);
    if (s != SF_OK) return s;
  }
  return SF_OK;
}

sf_model_folder *sf_single_file_open(const sf_vfs *fs, const char *path, const char *config_dir, unsigned flags,
                                     sf_diag *d) {
  if (refuse_pickle(fs, path, d) != SF_OK) return NULL;
  sf_safetensors *st = sf_st_open_vfs(fs, path, NULL, d);
  if (st == NULL) return NULL;
  sf_st_shared *file = sf_st_shared_new(st);
  if (file == NULL) {
    sf_st_close(st);
    oom(d);
    return NULL;
  }
  sf_parts ps;
  sf_model_folder *m = NULL;
  sf_status s = sort_keys(st, &ps, d);
  if (s == SF_OK && ps.p[0].n + ps.p[1].n + ps.p[2].n == 0)
    s = sf_diag_set(d, SF_ERR_BAD_MODEL,
                    "no model.diffusion_model.*, first_stage_model.* or cond_stage_model.transformer.* tensor: not an "
                    "SD-1.x single-file checkpoint");
  if (s == SF_OK) {
    if (config_dir != NULL) {
      m = sf_model_folder_open_vfs(sf_vfs_os(), config_dir, NULL, flags | SF_FOLDER_NO_WEIGHTS, d);
      if (m == NULL) {
        sf_diag_prefix(d, "SF_PARAM_CONFIG_PATH: ");
        s = d->status;
      }
    } else {
      m = calloc(1, sizeof *m);
      if (m == NULL) s = oom(d);
    }
  }
  if (s == SF_OK) {
    free(m->dir);
    free(m->class_name);
    m->dir = strdup(path);
    m->class_name = strdup("StableDiffusionPipeline");
    m->single_file = 1;
    m->config_source = config_dir ? strdup(config_dir) : NULL;
    if (m->dir == NULL || m->class_name == NULL || (config_dir && m->config_source == NULL)) s = oom(d);
  }
  if (s == SF_OK)
    s = config_dir ? configured_folder(m, config_dir, file, &ps, d) : inferred_folder(m, path, file, &ps, d);
  if (s == SF_OK && m->n_components == 0) s = sf_diag_set(d, SF_ERR_BAD_MODEL, "no component to load");
  parts_free(&ps);
  sf_st_shared_release(file); /* the views hold theirs */
  if (s != SF_OK) {
    sf_model_folder_close(m);
    if (strncmp(d->msg, path, strlen(path)) != 0) sf_diag_prefix(d, "%s%s: ", sf_vfs_label(fs), path);
    return NULL;
  }
  return m;
}
