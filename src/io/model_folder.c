#define _POSIX_C_SOURCE 200809L /* strdup */
#include "core/str.h"
#include "io/model_folder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SF_CONFIG_MAX_BYTES ((size_t)16 << 20)
#define SF_INDEX_MAX_BYTES ((size_t)256 << 20)

/* ---- small helpers ---------------------------------------------------------------------- */


/* How messages name the files of a folder: what precedes a file name of folder dir. On the
 * file system, rel ("unet/" or ""): names are relative to the opened folder, whose path the
 * caller prefixes to the whole message. In a memory set, the file's full path after the label
 * ("memory:unet/"), since a set has no path of its own to prefix. */
static char *shown_prefix(const sf_vfs *fs, const char *dir, const char *rel) {
  if (!sf_vfs_is_memory(fs)) return sf_str_printf("%s", rel);
  return sf_str_printf("%s%s%s", sf_vfs_label(fs), dir, *dir ? "/" : "");
}

/* The folder as messages and descriptions name it: its path, or for a memory set "memory"
 * (the set's root) or "memory:DIR". */
static char *shown_dir(const sf_vfs *fs, const char *dir) {
  if (!sf_vfs_is_memory(fs)) return sf_str_printf("%s", dir);
  return *dir ? sf_str_printf("%s%s", sf_vfs_label(fs), dir) : sf_str_printf("memory");
}

/* A file or folder name taken from a JSON file must not escape its folder. */
static int safe_name(const char *s) {
  return s[0] != '\0' && strchr(s, '/') == NULL && strchr(s, '\\') == NULL &&
         strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static sf_status oom(sf_diag *d) { return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory"); }

/* ---- weights ---------------------------------------------------------------------------- */

typedef struct weight_entry {
  const sf_st_tensor *t;
  size_t file;
} weight_entry;

/* One file shared by several views (a single-file checkpoint's components). */
struct sf_st_shared {
  sf_safetensors *st;
  size_t refs;
};

struct sf_weights {
  sf_safetensors **files;
  size_t n_files;
  weight_entry *e; /* sorted by name */
  size_t n;
  unsigned char *used;
  /* views (sf_weights_view): the renamed tensors and their names, the names in the file */
  struct sf_st_shared *shared;
  sf_st_tensor *own;
  char **own_names, **origins;
};

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const weight_entry *)a)->t->name, ((const weight_entry *)b)->t->name);
}

void sf_weights_close(sf_weights *w) {
  if (w == NULL) return;
  if (w->shared != NULL) {
    sf_st_shared_release(w->shared);
    for (size_t i = 0; i < w->n; i++) {
      free(w->own_names ? w->own_names[i] : NULL);
      free(w->origins ? w->origins[i] : NULL);
    }
    free(w->own);
    free(w->own_names);
    free(w->origins);
    w->n_files = 0;
  }
  for (size_t i = 0; i < w->n_files; i++) sf_st_close(w->files[i]);
  free(w->files);
  free(w->e);
  free(w->used);
  free(w);
}

/* Takes ownership of files[0..n_files) (closed on failure too). names: for messages. */
static sf_weights *weights_build(sf_safetensors **files, size_t n_files, sf_diag *d) {
  sf_weights *w = calloc(1, sizeof *w);
  if (w == NULL) {
    for (size_t i = 0; i < n_files; i++) sf_st_close(files[i]);
    free(files);
    oom(d);
    return NULL;
  }
  w->files = files;
  w->n_files = n_files;
  size_t n = 0;
  for (size_t i = 0; i < n_files; i++) n += sf_st_count(files[i]);
  w->e = calloc(n ? n : 1, sizeof *w->e);
  w->used = calloc(n ? n : 1, 1);
  if (w->e == NULL || w->used == NULL) {
    sf_weights_close(w);
    oom(d);
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < n_files; i++) {
    for (size_t j = 0; j < sf_st_count(files[i]); j++) {
      w->e[k].t = sf_st_tensor_at(files[i], j);
      w->e[k].file = i;
      k++;
    }
  }
  w->n = n;
  qsort(w->e, n, sizeof *w->e, cmp_entry);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(w->e[i - 1].t->name, w->e[i].t->name) == 0) {
      size_t a = w->e[i - 1].file, b = w->e[i].file;
      if (a > b) {
        size_t tmp = a;
        a = b;
        b = tmp;
      }
      sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\" is in two shards: %s and %s",
                  w->e[i].t->name, sf_st_name(files[a]), sf_st_name(files[b]));
      sf_weights_close(w);
      return NULL;
    }
  }
  return w;
}

sf_st_shared *sf_st_shared_new(sf_safetensors *st) {
  sf_st_shared *sh = calloc(1, sizeof *sh);
  if (sh == NULL) return NULL;
  sh->st = st;
  sh->refs = 1;
  return sh;
}

const sf_safetensors *sf_st_shared_file(const sf_st_shared *sh) { return sh->st; }

void sf_st_shared_release(sf_st_shared *sh) {
  if (sh == NULL || --sh->refs > 0) return;
  sf_st_close(sh->st);
  free(sh);
}

sf_weights *sf_weights_view(sf_st_shared *file, const sf_st_tensor *const *tensors, const char *const *names,
                            size_t n, sf_diag *d) {
  sf_weights *w = calloc(1, sizeof *w);
  if (w == NULL) {
    oom(d);
    return NULL;
  }
  w->shared = file;
  file->refs++;
  w->files = malloc(sizeof *w->files);
  w->n_files = 1;
  w->own = calloc(n ? n : 1, sizeof *w->own);
  w->own_names = calloc(n ? n : 1, sizeof *w->own_names);
  w->origins = calloc(n ? n : 1, sizeof *w->origins);
  w->e = calloc(n ? n : 1, sizeof *w->e);
  w->used = calloc(n ? n : 1, 1);
  if (w->files == NULL || w->own == NULL || w->own_names == NULL || w->origins == NULL || w->e == NULL ||
      w->used == NULL) {
    w->n = 0;
    sf_weights_close(w);
    oom(d);
    return NULL;
  }
  w->files[0] = file->st;
  w->n = n;
  for (size_t i = 0; i < n; i++) {
    w->own[i] = *tensors[i];
    w->own_names[i] = strdup(names[i]);
    w->origins[i] = strdup(tensors[i]->name);
    if (w->own_names[i] == NULL || w->origins[i] == NULL) {
      sf_weights_close(w);
      oom(d);
      return NULL;
    }
    w->own[i].name = w->own_names[i];
    w->e[i].t = &w->own[i];
  }
  qsort(w->e, n, sizeof *w->e, cmp_entry);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(w->e[i - 1].t->name, w->e[i].t->name) == 0) {
      sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: tensors \"%s\" and \"%s\" both stand for \"%s\"", sf_st_name(file->st),
                  sf_weights_origin(w, w->e[i - 1].t), sf_weights_origin(w, w->e[i].t), w->e[i].t->name);
      sf_weights_close(w);
      return NULL;
    }
  }
  return w;
}

const char *sf_weights_origin(const sf_weights *w, const sf_st_tensor *t) {
  if (w == NULL || t == NULL) return NULL;
  if (w->shared == NULL || t < w->own || t >= w->own + w->n) return t->name;
  return w->origins[t - w->own];
}

sf_weights *sf_weights_open_file(const char *path, sf_diag *d) {
  return sf_weights_open_file_vfs(sf_vfs_os(), path, d);
}

sf_weights *sf_weights_open_file_vfs(const sf_vfs *fs, const char *path, sf_diag *d) {
  sf_safetensors **files = malloc(sizeof *files);
  if (files == NULL) {
    oom(d);
    return NULL;
  }
  files[0] = sf_st_open_vfs(fs, path, NULL, d);
  if (files[0] == NULL) {
    free(files);
    return NULL;
  }
  return weights_build(files, 1, d);
}

size_t sf_weights_count(const sf_weights *w) { return w ? w->n : 0; }

const sf_st_tensor *sf_weights_at(const sf_weights *w, size_t index) {
  return w && index < w->n ? w->e[index].t : NULL;
}

static size_t weights_index(const sf_weights *w, const char *name) {
  size_t lo = 0, hi = w->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(w->e[mid].t->name, name);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return SIZE_MAX;
}

const sf_st_tensor *sf_weights_find(const sf_weights *w, const char *name) {
  if (w == NULL || name == NULL) return NULL;
  size_t i = weights_index(w, name);
  return i == SIZE_MAX ? NULL : w->e[i].t;
}

const char *sf_weights_file_of(const sf_weights *w, const sf_st_tensor *t) {
  if (w == NULL || t == NULL) return NULL;
  size_t i = weights_index(w, t->name);
  if (i == SIZE_MAX || w->e[i].t != t) return NULL;
  return sf_st_path(w->files[w->e[i].file]);
}

size_t sf_weights_file_count(const sf_weights *w) { return w ? w->n_files : 0; }

const sf_safetensors *sf_weights_file(const sf_weights *w, size_t index) {
  return w && index < w->n_files ? w->files[index] : NULL;
}

void sf_weights_mark_used(sf_weights *w, const sf_st_tensor *t) {
  if (w == NULL || t == NULL) return;
  size_t i = weights_index(w, t->name);
  if (i != SIZE_MAX && w->e[i].t == t) w->used[i] = 1;
}

void sf_weights_clear_used(sf_weights *w) {
  if (w && w->n) memset(w->used, 0, w->n);
}

size_t sf_weights_unused_count(const sf_weights *w) {
  size_t n = 0;
  for (size_t i = 0; w && i < w->n; i++) n += !w->used[i];
  return n;
}

void sf_weights_drop_pages(const sf_weights *w) {
  for (size_t i = 0; w && i < w->n_files; i++) sf_st_drop_pages(w->files[i]);
}

uint64_t sf_weights_data_bytes(const sf_weights *w) {
  uint64_t n = 0;
  for (size_t i = 0; w && i < w->n; i++) n += w->e[i].t->nbytes;
  return n;
}

int sf_weights_used_at(const sf_weights *w, size_t index) { return w && index < w->n && w->used[index]; }

const sf_st_tensor *sf_weights_first_unused(const sf_weights *w) {
  for (size_t i = 0; w && i < w->n; i++)
    if (!w->used[i]) return w->e[i].t;
  return NULL;
}

void sf_weights_get_stats(const sf_weights *w, sf_weights_stats *out) {
  memset(out, 0, sizeof *out);
  if (w == NULL) return;
  out->n_tensors = w->n;
  out->n_files = w->n_files;
  for (size_t i = 0; i < w->n; i++) {
    const sf_st_tensor *t = w->e[i].t;
    out->n_params += t->numel;
    out->n_bytes += t->nbytes;
    out->dtype_tensors[t->dtype]++;
    out->dtype_params[t->dtype] += t->numel;
  }
}

/* ---- locating and opening weight files -------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Opens the shards listed by an index file. pre: what names the folder's files in messages
 * (shown_prefix). */
static sf_weights *open_sharded(const sf_vfs *fs, const char *dir, const char *pre, const char *index_name,
                                sf_diag *d) {
  char *full = sf_vfs_join(fs, dir, index_name);
  char *shown = sf_str_printf("%s%s", pre, index_name);
  sf_json_doc *doc = NULL;
  const char **shards = NULL;
  sf_safetensors **files = NULL;
  sf_weights *w = NULL;
  size_t n_shards = 0;
  if (full == NULL || shown == NULL) {
    oom(d);
    goto done;
  }
  doc = sf_json_parse_vfs(fs, full, shown, SF_INDEX_MAX_BYTES, SF_JSON_ALLOW_NONFINITE, d);
  if (doc == NULL) goto done;
  const sf_json *map = sf_json_get(sf_json_root(doc), "weight_map");
  if (map == NULL || map->type != SF_JSON_OBJECT) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: no \"weight_map\" object", shown);
    goto done;
  }
  shards = malloc((map->len ? map->len : 1) * sizeof *shards);
  if (shards == NULL) {
    oom(d);
    goto done;
  }
  for (size_t i = 0; i < map->len; i++) {
    const char *s = sf_json_as_string(&map->u.obj.values[i]);
    if (s == NULL || !safe_name(s) || strlen(s) != map->u.obj.values[i].len) {
      sf_diag_set(d, SF_ERR_BAD_MODEL,
                  "%s: weight_map entry for \"%.200s\" is not a plain file name", shown,
                  map->u.obj.keys[i]);
      goto done;
    }
    shards[i] = s;
  }
  qsort(shards, map->len, sizeof *shards, cmp_str);
  for (size_t i = 0; i < map->len; i++)
    if (i == 0 || strcmp(shards[i], shards[n_shards - 1]) != 0) shards[n_shards++] = shards[i];
  if (n_shards == 0) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: weight_map is empty", shown);
    goto done;
  }
  files = calloc(n_shards, sizeof *files);
  if (files == NULL) {
    oom(d);
    goto done;
  }
  for (size_t i = 0; i < n_shards; i++) {
    char *sfull = sf_vfs_join(fs, dir, shards[i]);
    char *sshown = sf_str_printf("%s%s", pre, shards[i]);
    if (sfull == NULL || sshown == NULL) {
      oom(d);
    } else if (!sf_vfs_is_file(fs, sfull)) {
      sf_diag_set(d, SF_ERR_IO, "%s lists shard %s, which is missing", shown, sshown);
    } else {
      files[i] = sf_st_open_vfs(fs, sfull, sshown, d);
    }
    free(sfull);
    free(sshown);
    if (files[i] == NULL) {
      for (size_t j = 0; j < i; j++) sf_st_close(files[j]);
      free(files);
      files = NULL;
      goto done;
    }
  }
  w = weights_build(files, n_shards, d); /* owns files now */
  files = NULL;
  if (w == NULL) goto done;
  for (size_t i = 0; i < map->len; i++) {
    const char *tname = map->u.obj.keys[i];
    const char *shard = map->u.obj.values[i].u.str;
    size_t k = weights_index(w, tname);
    const char *in = k == SIZE_MAX ? NULL : sf_st_path(w->files[w->e[k].file]);
    const char *base = in ? strrchr(in, '/') : NULL;
    base = base ? base + 1 : in;
    if (k == SIZE_MAX) {
      sf_diag_set(d, SF_ERR_BAD_MODEL,
                  "%s: weight_map puts tensor \"%.200s\" in %s%s, which lacks it", shown, tname,
                  pre, shard);
    } else if (strcmp(base, shard) != 0) {
      sf_diag_set(d, SF_ERR_BAD_MODEL,
                  "%s: weight_map puts tensor \"%.200s\" in %s%s, but it is in %s%s", shown,
                  tname, pre, shard, pre, base);
    } else {
      continue;
    }
    sf_weights_close(w);
    w = NULL;
    break;
  }
done:
  free(shards);
  sf_json_free(doc);
  free(full);
  free(shown);
  return w;
}

static sf_status set_note(sf_component *c, char *note) {
  free(c->note);
  c->note = note;
  return SF_OK;
}

/* Finds the weight files of a model component, in diffusers' order of preference: the
 * requested variant before the plain file, a single file before a sharded index. rel: the
 * component's folder relative to the model folder ("unet/" or ""); pre: shown_prefix. */
static sf_status find_weights(const sf_vfs *fs, sf_component *c, const char *rel, const char *pre,
                              const char *variant, sf_diag *d) {
  const char *bases[2] = {"diffusion_pytorch_model", "model"};
  if (c->library && strcmp(c->library, "transformers") == 0) {
    bases[0] = "model";
    bases[1] = "diffusion_pytorch_model";
  }
  for (int pass = variant ? 0 : 1; pass < 2; pass++) {
    for (int b = 0; b < 2; b++) {
      for (int sharded = 0; sharded < 2; sharded++) {
        char *name;
        if (pass == 0)
          name = sharded ? sf_str_printf("%s.safetensors.index.%s.json", bases[b], variant)
                         : sf_str_printf("%s.%s.safetensors", bases[b], variant);
        else
          name = sharded ? sf_str_printf("%s.safetensors.index.json", bases[b])
                         : sf_str_printf("%s.safetensors", bases[b]);
        char *full = name ? sf_vfs_join(fs, c->dir, name) : NULL;
        if (full == NULL) {
          free(name);
          return oom(d);
        }
        int found = sf_vfs_is_file(fs, full);
        if (!found && sf_vfs_exists(fs, full)) {
          sf_diag_set(d, SF_ERR_IO, "%s%s: not a regular file", pre, name);
          free(full);
          free(name);
          return SF_ERR_IO;
        }
        if (found) {
          c->weights_file = sf_str_printf("%s%s", rel, name);
          if (c->weights_file == NULL) {
            free(full);
            free(name);
            return oom(d);
          }
          c->sharded = sharded;
          c->is_variant = pass == 0;
          if (sharded) {
            c->weights = open_sharded(fs, c->dir, pre, name, d);
          } else {
            sf_safetensors **files = malloc(sizeof *files);
            char *shown = sf_str_printf("%s%s", pre, name);
            if (files == NULL || shown == NULL) {
              free(files);
              free(shown);
              free(full);
              free(name);
              return oom(d);
            }
            files[0] = sf_st_open_vfs(fs, full, shown, d);
            free(shown);
            if (files[0] == NULL) free(files);
            else c->weights = weights_build(files, 1, d);
          }
          free(full);
          free(name);
          if (c->weights == NULL) return d ? d->status : SF_ERR_BAD_MODEL;
          if (variant && pass == 1)
            set_note(c, sf_str_printf("variant \"%s\" not found in %s, using %s", variant,
                                   *rel ? rel : "the folder", c->weights_file));
          return SF_OK;
        }
        free(full);
        free(name);
      }
    }
  }
  /* Pickle checkpoints cannot be read safely without Python; say so rather than calling
   * the folder config-only. */
  const char *pickles[2] = {"diffusion_pytorch_model.bin", "pytorch_model.bin"};
  for (int i = 0; i < 2; i++) {
    char *full = sf_vfs_join(fs, c->dir, pickles[i]);
    if (full == NULL) return oom(d);
    int found = sf_vfs_is_file(fs, full);
    free(full);
    if (found)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                         "%s%s: only PyTorch pickle weights are present; convert them to "
                         ".safetensors",
                         pre, pickles[i]);
  }
  c->config_only = 1;
  return SF_OK;
}

/* ---- components ------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static sf_component_kind guess_kind(const char *name, const char *class_name) {
  const char *cls = class_name ? class_name : "";
  if (ends_with(cls, "Scheduler") || strcmp(name, "scheduler") == 0) return SF_COMPONENT_SCHEDULER;
  if (strstr(cls, "Tokenizer") != NULL || strncmp(name, "tokenizer", 9) == 0)
    return SF_COMPONENT_TOKENIZER;
  if (strstr(cls, "ImageProcessor") != NULL || strstr(cls, "FeatureExtractor") != NULL ||
      strcmp(name, "feature_extractor") == 0)
    return SF_COMPONENT_PROCESSOR;
  return SF_COMPONENT_MODEL;
}

static void component_free_fields(sf_component *c);
void sf_component_clear(sf_component *c) { component_free_fields(c); }

static void component_free_fields(sf_component *c) {
  free(c->name);
  free(c->library);
  free(c->class_name);
  free(c->dir);
  free(c->config_path);
  free(c->config_shown);
  sf_json_free(c->config);
  sf_weights_close(c->weights);
  free(c->weights_file);
  free(c->note);
  memset(c, 0, sizeof *c);
}

/* c->name, library, class_name and dir (a path in fs) are set; rel is "unet/" or "" (the
 * folder relative to the model folder). kind_known: the kind comes from model_index.json
 * (else it is inferred from the files present). */
static sf_status component_load(const sf_vfs *fs, sf_component *c, const char *rel, const char *variant,
                                int kind_known, unsigned flags, sf_diag *d) {
  char *pre = shown_prefix(fs, c->dir, rel);
  if (pre == NULL) return oom(d);
  sf_status s = SF_OK;
  char *cfg = NULL, *cfg_shown = NULL;
  if (!sf_vfs_is_dir(fs, c->dir)) {
    if (*rel && kind_known && guess_kind(c->name, c->class_name) == SF_COMPONENT_TOKENIZER)
      s = sf_diag_set(d, SF_ERR_IO,
                      "%s: component folder is missing (a tokenizer folder can be given with "
                      "SF_PARAM_TOKENIZER_PATH)", pre);
    else if (*rel)
      s = sf_diag_set(d, SF_ERR_IO, "%s: component folder is missing", pre);
    else if (sf_vfs_is_memory(fs))
      s = sf_diag_set(d, SF_ERR_IO, "%s%s: no such folder (no file of the set is under it)", sf_vfs_label(fs),
                      c->dir);
    else
      s = sf_diag_set(d, SF_ERR_IO, "folder does not exist or is not a directory");
    goto done;
  }
  static const char *const config_names[] = {
      [SF_COMPONENT_MODEL] = "config.json",
      [SF_COMPONENT_SCHEDULER] = "scheduler_config.json",
      [SF_COMPONENT_TOKENIZER] = "tokenizer_config.json",
      [SF_COMPONENT_PROCESSOR] = "preprocessor_config.json",
  };
  if (kind_known) {
    c->kind = guess_kind(c->name, c->class_name);
  } else {
    c->kind = SF_COMPONENT_MODEL;
    for (int k = 0; k < 4; k++) {
      char *p = sf_vfs_join(fs, c->dir, config_names[k]);
      if (p == NULL) {
        s = oom(d);
        goto done;
      }
      int found = sf_vfs_is_file(fs, p);
      free(p);
      if (found) {
        c->kind = (sf_component_kind)k;
        break;
      }
    }
  }
  cfg = sf_vfs_join(fs, c->dir, config_names[c->kind]);
  cfg_shown = sf_str_printf("%s%s", pre, config_names[c->kind]);
  if (cfg == NULL || cfg_shown == NULL) {
    s = oom(d);
    goto done;
  }
  if (c->kind == SF_COMPONENT_TOKENIZER && !sf_vfs_exists(fs, cfg)) {
    /* vocab.json + merges.txt alone are enough for a CLIP tokenizer */
  } else {
    if (!sf_vfs_exists(fs, cfg)) {
      s = sf_diag_set(d, SF_ERR_IO, "%s is missing", cfg_shown);
      goto done;
    }
    /* Configs are written by Python's json module, which spells float('-inf') -Infinity. */
    c->config = sf_json_parse_vfs(fs, cfg, cfg_shown, SF_CONFIG_MAX_BYTES, SF_JSON_ALLOW_NONFINITE, d);
    c->config_path = cfg;
    c->config_shown = cfg_shown;
    cfg = NULL;
    cfg_shown = NULL;
    if (c->config == NULL) {
      s = d ? d->status : SF_ERR_BAD_MODEL;
      goto done;
    }
    if (sf_json_root(c->config)->type != SF_JSON_OBJECT) {
      s = sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: not a JSON object", c->config_shown);
      goto done;
    }
    if (c->class_name == NULL) {
      const char *cls = sf_json_as_string(sf_json_get(sf_json_root(c->config), "_class_name"));
      if (cls != NULL && (c->class_name = strdup(cls)) == NULL) {
        s = oom(d);
        goto done;
      }
    }
  }
  if (c->kind == SF_COMPONENT_MODEL && !(flags & SF_FOLDER_NO_WEIGHTS)) s = find_weights(fs, c, rel, pre, variant, d);
done:
  free(cfg);
  free(cfg_shown);
  free(pre);
  return s;
}

const sf_json *sf_component_config(const sf_component *c) {
  return c && c->config ? sf_json_root(c->config) : NULL;
}

static int valid_variant(const char *variant, sf_diag *d) {
  if (variant == NULL || safe_name(variant)) return 1;
  sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "invalid weight variant \"%.64s\"", variant);
  return 0;
}

sf_component *sf_component_open(const char *dir, const char *variant, sf_diag *d) {
  return sf_component_open_vfs(sf_vfs_os(), dir, variant, d);
}

sf_component *sf_component_open_vfs(const sf_vfs *fs, const char *dir, const char *variant, sf_diag *d) {
  if (dir == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "component folder is NULL");
    return NULL;
  }
  if (!valid_variant(variant, d)) return NULL;
  sf_component *c = calloc(1, sizeof *c);
  if (c == NULL) {
    oom(d);
    return NULL;
  }
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  const char *base = dir + len;
  while (base > dir && base[-1] != '/') base--;
  c->dir = sf_str_printf("%.*s", (int)len, dir);
  c->name = sf_str_printf("%.*s", (int)(dir + len - base), base);
  if (c->dir == NULL || c->name == NULL) {
    oom(d);
  } else if (component_load(fs, c, "", variant, 0, 0, d) == SF_OK) {
    return c;
  }
  if (!sf_vfs_is_memory(fs)) sf_diag_prefix(d, "component folder %s: ", dir); /* memory: names are full */
  sf_component_close(c);
  return NULL;
}

void sf_component_close(sf_component *c) {
  if (c == NULL) return;
  component_free_fields(c);
  free(c);
}

/* ---- model folder ----------------------------------------------------------------------- */

void sf_model_folder_close(sf_model_folder *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->n_components; i++) component_free_fields(&m->components[i]);
  free(m->components);
  sf_json_free(m->index);
  free(m->dir);
  free(m->variant);
  free(m->class_name);
  free(m->config_source);
  free(m);
}

/* 1 if v is a [library, class] pair with both present; 0 if it is a pair with a null (an
 * absent component) or not a component entry at all. */
static int component_entry(const sf_json *v, const char **lib, const char **cls) {
  if (v->type != SF_JSON_ARRAY || v->len != 2) return 0;
  const sf_json *a = &v->u.items[0], *b = &v->u.items[1];
  if ((a->type != SF_JSON_STRING && a->type != SF_JSON_NULL) ||
      (b->type != SF_JSON_STRING && b->type != SF_JSON_NULL))
    return 0;
  *lib = sf_json_as_string(a);
  *cls = sf_json_as_string(b);
  return *lib != NULL && *cls != NULL;
}

/* root: the folder's path in fs. */
static sf_status folder_load(const sf_vfs *fs, sf_model_folder *m, const char *root, const char *variant,
                             unsigned flags, sf_diag *d) {
  if (!sf_vfs_is_dir(fs, root)) {
    if (sf_vfs_is_memory(fs))
      return sf_diag_set(d, SF_ERR_IO, "%s%s: no such folder (no file of the set is under it)", sf_vfs_label(fs),
                         root);
    return sf_diag_set(d, SF_ERR_IO, "folder does not exist or is not a directory");
  }
  char *index = sf_vfs_join(fs, root, "model_index.json");
  char *index_shown = shown_prefix(fs, root, "");
  char *tmp = index_shown ? sf_str_printf("%smodel_index.json", index_shown) : NULL;
  free(index_shown);
  index_shown = tmp;
  sf_status s = SF_OK;
  if (index == NULL || index_shown == NULL) {
    s = oom(d);
    goto done;
  }
  if (!sf_vfs_exists(fs, index)) {
    s = sf_diag_set(d, SF_ERR_IO, "%s is missing (not a diffusers folder?)", index_shown);
    goto done;
  }
  m->index = sf_json_parse_vfs(fs, index, index_shown, SF_CONFIG_MAX_BYTES, SF_JSON_ALLOW_NONFINITE, d);
  if (m->index == NULL) {
    s = d ? d->status : SF_ERR_BAD_MODEL;
    goto done;
  }
  const sf_json *root_obj = sf_json_root(m->index);
  if (root_obj->type != SF_JSON_OBJECT) {
    s = sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: not a JSON object", index_shown);
    goto done;
  }
  const char *cls = sf_json_as_string(sf_json_get(root_obj, "_class_name"));
  if (cls != NULL && (m->class_name = strdup(cls)) == NULL) {
    s = oom(d);
    goto done;
  }
  m->components = calloc(root_obj->len ? root_obj->len : 1, sizeof *m->components);
  if (m->components == NULL) {
    s = oom(d);
    goto done;
  }
  for (size_t i = 0; i < root_obj->len && s == SF_OK; i++) {
    const char *key = root_obj->u.obj.keys[i];
    const char *lib, *klass;
    if (key[0] == '_' || !component_entry(&root_obj->u.obj.values[i], &lib, &klass)) continue;
    if (!safe_name(key) || strlen(key) != root_obj->u.obj.key_lens[i]) {
      s = sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: component name \"%.64s\" is not a folder name", index_shown,
                      key);
      break;
    }
    if ((flags & SF_FOLDER_TOKENIZER_OPTIONAL) && guess_kind(key, klass) == SF_COMPONENT_TOKENIZER) {
      char *dir = sf_vfs_join(fs, root, key);
      if (dir == NULL) {
        s = oom(d);
        break;
      }
      int present = sf_vfs_is_dir(fs, dir);
      free(dir);
      if (!present) continue;
    }
    sf_component *c = &m->components[m->n_components++];
    c->name = strdup(key);
    c->library = strdup(lib);
    c->class_name = strdup(klass);
    c->dir = sf_vfs_join(fs, root, key);
    char *rel = sf_str_printf("%s/", key);
    if (c->name == NULL || c->library == NULL || c->class_name == NULL || c->dir == NULL || rel == NULL)
      s = oom(d);
    else
      s = component_load(fs, c, rel, variant, 1, flags, d);
    free(rel);
  }
  if (s == SF_OK && m->n_components == 0)
    s = sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: no components (no [library, class] entries)", index_shown);
done:
  free(index);
  free(index_shown);
  return s;
}

sf_model_folder *sf_model_folder_open(const char *dir, const char *variant, sf_diag *d) {
  return sf_model_folder_open_ex(dir, variant, 0, d);
}

sf_model_folder *sf_model_folder_open_ex(const char *dir, const char *variant, unsigned flags, sf_diag *d) {
  return sf_model_folder_open_vfs(sf_vfs_os(), dir, variant, flags, d);
}

sf_model_folder *sf_model_folder_open_vfs(const sf_vfs *fs, const char *dir, const char *variant, unsigned flags,
                                          sf_diag *d) {
  if (dir == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "model folder is NULL");
    return NULL;
  }
  if (!valid_variant(variant, d)) return NULL;
  sf_model_folder *m = calloc(1, sizeof *m);
  if (m == NULL) {
    oom(d);
    return NULL;
  }
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  char *root = sf_str_printf("%.*s", (int)len, dir);
  m->dir = root ? shown_dir(fs, root) : NULL;
  m->variant = variant ? strdup(variant) : NULL;
  if (root == NULL || m->dir == NULL || (variant && m->variant == NULL)) {
    oom(d);
  } else if (folder_load(fs, m, root, variant, flags, d) == SF_OK) {
    free(root);
    return m;
  }
  free(root);
  if (!sf_vfs_is_memory(fs)) sf_diag_prefix(d, "model folder %s: ", dir); /* memory: names are full */
  sf_model_folder_close(m);
  return NULL;
}

const sf_component *sf_model_folder_find(const sf_model_folder *m, const char *name) {
  if (m == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < m->n_components; i++)
    if (strcmp(m->components[i].name, name) == 0) return &m->components[i];
  return NULL;
}

sf_model_folder *sf_model_folder_from_component(sf_component *c, const char *role, sf_diag *d) {
  return sf_model_folder_from_component_vfs(sf_vfs_os(), c, role, d);
}

sf_model_folder *sf_model_folder_from_component_vfs(const sf_vfs *fs, sf_component *c, const char *role,
                                                    sf_diag *d) {
  sf_model_folder *m = calloc(1, sizeof *m);
  char *name = role ? strdup(role) : NULL;
  char *dir = c ? shown_dir(fs, c->dir) : NULL;
  if (m == NULL || (role && name == NULL) || dir == NULL) {
    free(m);
    free(name);
    free(dir);
    sf_component_close(c);
    if (c != NULL) oom(d);
    else sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "no component");
    return NULL;
  }
  m->dir = dir;
  m->components = c; /* one component, taken over: the array is this one allocation */
  m->n_components = 1;
  if (name) {
    free(c->name);
    c->name = name;
  }
  return m;
}
