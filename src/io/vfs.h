/* A small read-only virtual file system: where model files come from. Two backends:
 *  - the real file system (sf_vfs_os): stat, fopen and mmap, exactly as the readers used them
 *    directly before;
 *  - an in-memory set of files by relative path (sf_vfs_mem_*), for apps whose weights are not
 *    in the file system. Files are copied into reference-counted blocks or borrowed from the
 *    caller; a mapping of a copied file holds a reference, so it outlives the set.
 *
 * Paths of the file system backend are ordinary paths. Paths of a memory set are relative,
 * '/'-separated, without "." or ".." segments ("unet/config.json"); "" is the set's root. A
 * memory path is a directory when some file lies under it (the root always is one).
 *
 * Reading and mapping report low-level outcomes (errno values, map results); the readers word
 * the messages, so each keeps its own. Names shown in messages are sf_vfs_label(fs) followed
 * by the path ("" for the file system, "memory:" for a set). */
#ifndef SF_IO_VFS_H
#define SF_IO_VFS_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"

typedef struct sf_vfs sf_vfs;

/* The real file system (static; never destroyed). */
const sf_vfs *sf_vfs_os(void);

/* ---- in-memory sets ------------------------------------------------------------------------ */

/* NULL when out of memory. */
sf_vfs *sf_vfs_mem_create(void);
/* Drops the set's references to its copied files (mappings keep theirs). NULL and the file
 * system backend are no-ops. */
void sf_vfs_mem_destroy(sf_vfs *fs);
/* 1 if path is a valid memory file path: non-empty, relative, '/'-separated, no empty, "." or
 * ".." segment, no backslash. */
int sf_vfs_mem_path_ok(const char *path);
/* Adds or replaces the file at path. copy: the bytes are copied (a reference-counted block);
 * else borrowed (data must outlive the set and every mapping). SF_ERR_INVALID_ARGUMENT for a
 * bad path, NULL data with size > 0, the file system backend, or a path that clashes with the
 * set's folders (a file where files lie under it, or under a file); SF_ERR_OUT_OF_MEMORY. The
 * message starts with the path. */
sf_status sf_vfs_mem_add(sf_vfs *fs, const char *path, const void *data, size_t size, int copy, sf_diag *d);
/* Files in the set. */
size_t sf_vfs_mem_count(const sf_vfs *fs);

/* ---- queries --------------------------------------------------------------------------------- */

/* "" for the file system, "memory:" for a memory set: prefixed to paths in messages. */
const char *sf_vfs_label(const sf_vfs *fs);
int sf_vfs_is_memory(const sf_vfs *fs);
/* dir + "/" + name; in a memory set name alone when dir is "" (the root). malloc'd; NULL when
 * out of memory. */
char *sf_vfs_join(const sf_vfs *fs, const char *dir, const char *name);

/* A regular file (memory: a file of the set). */
int sf_vfs_is_file(const sf_vfs *fs, const char *path);
/* A directory (memory: the root, or a prefix with files under it). */
int sf_vfs_is_dir(const sf_vfs *fs, const char *path);
/* Anything at path (a file, a directory, or for the file system any other kind). */
int sf_vfs_exists(const sf_vfs *fs, const char *path);

/* The names directly in folder dir, sorted by strcmp, as a malloc'd array of malloc'd strings
 * (free with sf_vfs_list_free). *is_dir (may be NULL) receives a malloc'd array of flags.
 * SF_ERR_IO when dir is not a directory, SF_ERR_OUT_OF_MEMORY. */
sf_status sf_vfs_list(const sf_vfs *fs, const char *dir, char ***out_names, unsigned char **out_is_dir,
                      size_t *out_count, sf_diag *d);
void sf_vfs_list_free(char **names, unsigned char *is_dir, size_t count);

/* ---- sequential reading ------------------------------------------------------------------------ */

typedef struct sf_vfs_file sf_vfs_file;

/* NULL with *err set to an errno value (ENOENT for a missing memory file, EISDIR for a memory
 * directory, ENOMEM). */
sf_vfs_file *sf_vfs_open(const sf_vfs *fs, const char *path, int *err);
/* 1 with *size if the open file is a regular file (memory files always are), else 0. */
int sf_vfs_file_size(sf_vfs_file *f, uint64_t *size);
/* Like fread: the bytes read, fewer at the end of the file or on an error. */
size_t sf_vfs_read(sf_vfs_file *f, void *buf, size_t n);
/* Non-zero after a read error, like ferror. */
int sf_vfs_error(sf_vfs_file *f);
void sf_vfs_close(sf_vfs_file *f);

/* ---- mapping ------------------------------------------------------------------------------------- */

/* A read-only view of a whole file that stays valid until sf_vfs_unmap, even if a memory set
 * is destroyed or the file replaced meanwhile (a borrowed file: as long as the caller keeps
 * its bytes). data is NULL when size is 0. */
typedef struct sf_vfs_map {
  const void *data;
  size_t size;
  /* private */
  void *os_addr; /* an mmap to undo */
  size_t os_len;
  struct sf_vfs_blob *blob; /* a copied memory file's block, referenced */
} sf_vfs_map;

typedef enum sf_vfs_map_result {
  SF_VFS_MAPPED = 0,
  SF_VFS_MAP_OPEN_FAILED,  /* *err: errno */
  SF_VFS_MAP_NOT_REGULAR,
  SF_VFS_MAP_TOO_LARGE,    /* larger than the address space */
  SF_VFS_MAP_FAILED        /* mmap failed (*err: errno; out->size: the file's size) */
} sf_vfs_map_result;

/* On failure *out is cleared (except size for SF_VFS_MAP_FAILED) and needs no unmap. */
sf_vfs_map_result sf_vfs_map_file(const sf_vfs *fs, const char *path, sf_vfs_map *out, int *err);
/* Drops the pages of a file mapping from the process's resident set (they stay in the page
 * cache and come back when read again): a checkpoint's bytes once they are packed. No-op for
 * memory files. */
void sf_vfs_drop_pages(const sf_vfs_map *m);
/* Releases the view (clears *m); a cleared map is a no-op. */
void sf_vfs_unmap(sf_vfs_map *m);

#endif
