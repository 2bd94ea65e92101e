/* sf_files_*: a diffusers folder's files held in memory (io/vfs.h's memory backend). */
#include "api/files.h"

#include <stdlib.h>

#include "core/context.h"

struct sf_files {
  sf_vfs *fs;
};

const sf_vfs *sf_files_vfs(const sf_files *files) { return files->fs; }

sf_status sf_files_create(sf_files **out_files) {
  if (out_files == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_files_create: out_files is NULL");
  *out_files = NULL;
  sf_files *f = malloc(sizeof *f);
  if (f == NULL || (f->fs = sf_vfs_mem_create()) == NULL) {
    free(f);
    return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_files_create: out of memory");
  }
  *out_files = f;
  return SF_OK;
}

void sf_files_destroy(sf_files *files) {
  if (files == NULL) return;
  sf_vfs_mem_destroy(files->fs); /* pipelines keep their own references to copied files */
  free(files);
}

sf_status sf_files_add(sf_files *files, const char *path, const void *data, size_t size, int copy) {
  if (files == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_files_add: files is NULL");
  sf_diag d = {0};
  if (sf_vfs_mem_add(files->fs, path, data, size, copy, &d) == SF_OK) return SF_OK;
  sf_diag_prefix(&d, "sf_files_add: ");
  return sf_ctx_take_diag(NULL, &d);
}
