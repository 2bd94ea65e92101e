/* Reader for the safetensors format: an 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}}, then
 * raw little-endian C-order data. Files are memory-mapped (or used in place from memory); nothing is trusted: every
 * offset, length, shape product and dtype size is checked before use. */
#ifndef SF_IO_SAFETENSORS_H
#define SF_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/vfs.h"

typedef enum sf_dtype {
  SF_DTYPE_F32 = 0,
  SF_DTYPE_F16,
  SF_DTYPE_BF16,
  SF_DTYPE_F64,
  SF_DTYPE_I64,
  SF_DTYPE_I32,
  SF_DTYPE_I16,
  SF_DTYPE_I8,
  SF_DTYPE_U8,
  SF_DTYPE_BOOL,
  SF_DTYPE_COUNT
} sf_dtype;

#define SF_ST_MAX_DIMS 8

typedef struct sf_st_tensor {
  const char *name;
  sf_dtype dtype;
  int ndim;
  int64_t shape[SF_ST_MAX_DIMS];
  uint64_t numel;
  uint64_t nbytes;
  const void *data; /* inside the mapping; not necessarily aligned */
} sf_st_tensor;

typedef struct sf_safetensors sf_safetensors;

size_t sf_dtype_size(sf_dtype dt);
const char *sf_dtype_name(sf_dtype dt); /* "F32", ... */

/* Maps and validates path. The message names the file and, where relevant, the tensor. */
sf_safetensors *sf_st_open(const char *path, sf_diag *d);
/* Same, naming the file display_name in messages (e.g. a path relative to a model folder);
 * sf_st_path still returns path. */
sf_safetensors *sf_st_open_as(const char *path, const char *display_name, sf_diag *d);
/* Same, mapping path from fs (sf_vfs_os() for the file system; a memory set's file is used in
 * place and never written, and a copied one stays referenced until sf_st_close). */
sf_safetensors *sf_st_open_vfs(const sf_vfs *fs, const char *path, const char *display_name, sf_diag *d);
/* Same validation over a caller-owned buffer (kept borrowed until close): for tests and
 * fuzzing. name is used in messages. */
sf_safetensors *sf_st_open_memory(const void *data, size_t size, const char *name, sf_diag *d);
void sf_st_close(sf_safetensors *st);

size_t sf_st_count(const sf_safetensors *st);
/* Tensors sorted by name. */
const sf_st_tensor *sf_st_tensor_at(const sf_safetensors *st, size_t index);
const sf_st_tensor *sf_st_find(const sf_safetensors *st, const char *name);
/* Value of a string entry of __metadata__, or NULL. */
const char *sf_st_metadata(const sf_safetensors *st, const char *key);
const char *sf_st_path(const sf_safetensors *st);
/* The name used in messages (display_name of sf_st_open_as, else the path). */
const char *sf_st_name(const sf_safetensors *st);

/* Converts any float/integer dtype to float32 (F16/BF16 exactly, F64 rounded). out holds
 * t->numel floats. */
void sf_st_to_f32(const sf_st_tensor *t, float *out);
/* Elements [begin, end) of the same: out[i] for i in [begin, end), out being the whole
 * tensor's buffer (parts convert independently, e.g. on several threads). */
void sf_st_to_f32_range(const sf_st_tensor *t, float *out, size_t begin, size_t end);
/* Integer dtypes to int64 (0 on success, -1 for float dtypes). */
int sf_st_to_i64(const sf_st_tensor *t, int64_t *out);

/* Drops the file's mapped pages from the resident set once its tensors are packed
 * (sf_vfs_drop_pages); they are read again from the page cache if needed. */
void sf_st_drop_pages(const sf_safetensors *st);

/* Float conversions used across the library. */
float sf_f16_to_f32(uint16_t h);
float sf_bf16_to_f32(uint16_t h);
uint16_t sf_f32_to_f16(float f); /* round to nearest even */

#endif
