/* A diffusers model folder: model_index.json naming the pipeline's components, one
 * subfolder per component with its config and (for models) safetensors weights, possibly a
 * precision variant (".fp16") and possibly sharded. Everything is opened and validated up
 * front; weight files are memory-mapped, so opening costs no RSS until tensors are read.
 * Messages name files relative to the folder and are prefixed with the folder itself.
 *
 * The *_vfs functions read from a file source (io/vfs.h): the file system, or an in-memory set
 * whose root is the path "". Memory files are named by their full path after the set's label
 * ("memory:unet/config.json"), without a folder prefix; weight files are used in place. */
#ifndef SF_IO_MODEL_FOLDER_H
#define SF_IO_MODEL_FOLDER_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/vfs.h"

/* ---- weights: every tensor of one component, across its shards ------------------------- */

typedef struct sf_weights sf_weights;

/* One safetensors file as a weight set (e.g. a TAESD decoder file). */
sf_weights *sf_weights_open_file(const char *path, sf_diag *d);
sf_weights *sf_weights_open_file_vfs(const sf_vfs *fs, const char *path, sf_diag *d);
void sf_weights_close(sf_weights *w);

size_t sf_weights_count(const sf_weights *w);
/* Tensors sorted by name across all files. */
const sf_st_tensor *sf_weights_at(const sf_weights *w, size_t index);
/* NULL if absent. */
const sf_st_tensor *sf_weights_find(const sf_weights *w, const char *name);
/* The file a tensor of w came from (its path as opened), NULL if t is not in w. */
const char *sf_weights_file_of(const sf_weights *w, const sf_st_tensor *t);
size_t sf_weights_file_count(const sf_weights *w);
const sf_safetensors *sf_weights_file(const sf_weights *w, size_t index);

/* Usage tracking, so a model builder can report tensors it never consumed. */
void sf_weights_mark_used(sf_weights *w, const sf_st_tensor *t);
void sf_weights_clear_used(sf_weights *w);
size_t sf_weights_unused_count(const sf_weights *w);
/* Drops the mapped pages of every file (sf_st_drop_pages): after a network is packed. */
void sf_weights_drop_pages(const sf_weights *w);
/* Bytes of the tensors' data in the files (what reading them all maps in). */
uint64_t sf_weights_data_bytes(const sf_weights *w);
/* Whether the tensor at index (sf_weights_at) was used. */
int sf_weights_used_at(const sf_weights *w, size_t index);
/* First unused tensor in name order, NULL if all were used. */
const sf_st_tensor *sf_weights_first_unused(const sf_weights *w);

typedef struct sf_weights_stats {
  size_t n_tensors;
  size_t n_files;
  uint64_t n_params; /* sum of numel */
  uint64_t n_bytes;  /* sum of nbytes */
  size_t dtype_tensors[SF_DTYPE_COUNT];
  uint64_t dtype_params[SF_DTYPE_COUNT];
} sf_weights_stats;

void sf_weights_get_stats(const sf_weights *w, sf_weights_stats *out);

/* A weight set whose tensors are views of tensors of one shared file under other names (and
 * possibly other shapes of the same element count): a single-file checkpoint's component under
 * the names its builder asks for. tensors[i] is shown as names[i]; both arrays are copied, the
 * tensors' data stays in the file. The view holds a reference to file. Two tensors under one name
 * are SF_ERR_BAD_MODEL naming both. */
typedef struct sf_st_shared sf_st_shared;
/* Takes st (closed on the last release); NULL when out of memory (st is then not taken). */
sf_st_shared *sf_st_shared_new(sf_safetensors *st);
const sf_safetensors *sf_st_shared_file(const sf_st_shared *sh);
void sf_st_shared_release(sf_st_shared *sh);
sf_weights *sf_weights_view(sf_st_shared *file, const sf_st_tensor *const *tensors, const char *const *names,
                            size_t n, sf_diag *d);
/* The name tensor t of w has in its file (a view's original name), else t->name. */
const char *sf_weights_origin(const sf_weights *w, const sf_st_tensor *t);

/* ---- components ------------------------------------------------------------------------- */

typedef enum sf_component_kind {
  SF_COMPONENT_MODEL = 0, /* config.json, weights expected (or config only) */
  SF_COMPONENT_SCHEDULER, /* scheduler_config.json, never weights */
  SF_COMPONENT_TOKENIZER, /* tokenizer_config.json (optional) + vocab.json + merges.txt */
  SF_COMPONENT_PROCESSOR  /* preprocessor_config.json (feature extractors), never weights */
} sf_component_kind;

typedef struct sf_component {
  char *name;        /* model_index.json key, or the folder's base name */
  char *library;     /* "diffusers", "transformers"; NULL for a folder opened alone */
  char *class_name;  /* from model_index.json, else the config's "_class_name"; may be NULL */
  char *dir;         /* the component folder, as a path in the file source it came from */
  sf_component_kind kind;
  char *config_path; /* in the same source; NULL only for a tokenizer without tokenizer_config.json */
  char *config_shown; /* config_path as messages name it (the folder's path, or "memory:unet/config.json") */
  sf_json_doc *config;
  /* NULL for schedulers, tokenizers, processors and config-only models. */
  sf_weights *weights;
  int config_only;     /* a model folder with config.json and no weight files */
  int is_variant;      /* the weights are the requested variant (e.g. fp16) */
  int sharded;         /* loaded through a .safetensors.index*.json */
  char *weights_file;  /* weight file or index file, relative to the model folder; or NULL */
  char *note;          /* something worth logging (variant fallback...), or NULL */
} sf_component;

const sf_json *sf_component_config(const sf_component *c); /* config root or NULL */

/* A single component folder by itself (a UNet or TAESD folder with config.json + weights).
 * variant: NULL or e.g. "fp16" (falls back to the plain file, with a note). */
sf_component *sf_component_open(const char *dir, const char *variant, sf_diag *d);
sf_component *sf_component_open_vfs(const sf_vfs *fs, const char *dir, const char *variant, sf_diag *d);
void sf_component_close(sf_component *c);
/* Frees a component's fields and zeroes it (a component of a folder being assembled). */
void sf_component_clear(sf_component *c);

/* ---- the pipeline folder ---------------------------------------------------------------- */

typedef struct sf_model_folder {
  char *dir;        /* for messages and descriptions: the path as given, or for a memory set
                     * "memory" (its root) / "memory:DIR"; components' dirs are the paths */
  char *variant;    /* as requested, or NULL */
  sf_json_doc *index; /* model_index.json */
  char *class_name; /* "_class_name", e.g. "StableDiffusionPipeline"; may be NULL */
  sf_component *components; /* present components, in model_index.json order */
  size_t n_components;
  /* A single-file checkpoint (io/single_file.h): dir is the file; config_source the config
   * folder given with it, NULL when the configs were inferred from its shapes. */
  int single_file;
  char *config_source;
} sf_model_folder;

/* SF_ERR_IO (missing folder or file), SF_ERR_BAD_MODEL (malformed or inconsistent),
 * SF_ERR_UNSUPPORTED (e.g. only pickle .bin weights, unknown dtype), SF_ERR_OUT_OF_MEMORY. */
sf_model_folder *sf_model_folder_open(const char *dir, const char *variant, sf_diag *d);
enum {
  /* A tokenizer listed in model_index.json whose folder is missing is left out instead of
   * failing: for callers that bring their own tokenizer. */
  SF_FOLDER_TOKENIZER_OPTIONAL = 1,
  /* Configs only: model components' weight files are not looked for (a config folder given
   * with a single-file checkpoint). */
  SF_FOLDER_NO_WEIGHTS = 2
};
sf_model_folder *sf_model_folder_open_ex(const char *dir, const char *variant, unsigned flags, sf_diag *d);
sf_model_folder *sf_model_folder_open_vfs(const sf_vfs *fs, const char *dir, const char *variant, unsigned flags,
                                          sf_diag *d);
void sf_model_folder_close(sf_model_folder *m);
/* A folder of one component opened by itself (sf_component_open, or a component the
 * caller filled in), named `role` ("unet", "vae", ...). Takes c over, also on failure. */
sf_model_folder *sf_model_folder_from_component(sf_component *c, const char *role, sf_diag *d);
/* Same for a component opened from fs (names the folder as sf_model_folder_open_vfs does). */
sf_model_folder *sf_model_folder_from_component_vfs(const sf_vfs *fs, sf_component *c, const char *role,
                                                    sf_diag *d);
/* NULL if the component is absent (not listed, or listed as [null, null]). */
const sf_component *sf_model_folder_find(const sf_model_folder *m, const char *name);

#endif
