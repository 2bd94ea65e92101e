#define _POSIX_C_SOURCE 200809L /* mmap, open, fstat, fileno, strdup */
#include "io/vfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A copied memory file: shared by the set and every mapping of it. */
struct sf_vfs_blob {
  atomic_size_t refs;
  size_t size;
  unsigned char data[];
};

typedef struct mem_entry {
  char *path;
  const unsigned char *data; /* the blob's bytes, or the caller's */
  size_t size;
  struct sf_vfs_blob *blob;  /* NULL when borrowed */
} mem_entry;

struct sf_vfs {
  int memory;
  mem_entry *e; /* sorted by path (strcmp), so a folder's files are contiguous */
  size_t n, cap;
};

static const sf_vfs os_fs = {0, NULL, 0, 0};

const sf_vfs *sf_vfs_os(void) { return &os_fs; }

static void blob_ref(struct sf_vfs_blob *b) {
  if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

static void blob_unref(struct sf_vfs_blob *b) {
  if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}

/* ---- in-memory sets ------------------------------------------------------------------------ */

sf_vfs *sf_vfs_mem_create(void) {
  sf_vfs *fs = calloc(1, sizeof *fs);
  if (fs) fs->memory = 1;
  return fs;
}

void sf_vfs_mem_destroy(sf_vfs *fs) {
  if (fs == NULL || !fs->memory) return;
  for (size_t i = 0; i < fs->n; i++) {
    free(fs->e[i].path);
    blob_unref(fs->e[i].blob);
  }
  free(fs->e);
  free(fs);
}

int sf_vfs_mem_path_ok(const char *path) {
  if (path == NULL || path[0] == '\0' || path[0] == '/') return 0;
  const char *s = path;
  for (;;) {
    const char *end = strchr(s, '/');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return 0;
    if (memchr(s, '\\', len) != NULL) return 0;
    if (end == NULL) return 1;
    s = end + 1;
  }
}

/* Index of the first entry whose path is >= path. */
static size_t mem_lower(const sf_vfs *fs, const char *path) {
  size_t lo = 0, hi = fs->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(fs->e[mid].path, path) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static const mem_entry *mem_find(const sf_vfs *fs, const char *path) {
  size_t i = mem_lower(fs, path);
  return i < fs->n && strcmp(fs->e[i].path, path) == 0 ? &fs->e[i] : NULL;
}

/* 1 if a file of the set lies under folder dir ("" : any file). */
static int mem_has_under(const sf_vfs *fs, const char *dir) {
  size_t len = strlen(dir);
  if (len == 0) return fs->n > 0;
  for (size_t i = mem_lower(fs, dir); i < fs->n; i++) {
    int c = strncmp(fs->e[i].path, dir, len);
    if (c != 0) break; /* past every path that starts with dir */
    if (fs->e[i].path[len] == '/') return 1;
  }
  return 0;
}

sf_status sf_vfs_mem_add(sf_vfs *fs, const char *path, const void *data, size_t size, int copy, sf_diag *d) {
  if (fs == NULL || !fs->memory) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "not a memory file set");
  if (!sf_vfs_mem_path_ok(path))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "path \"%.200s\" is not a relative '/'-separated file path (no leading '/', no empty, "
                       "\".\" or \"..\" part, no '\\')",
                       path ? path : "(null)");
  if (data == NULL && size > 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%.200s: data is NULL but size is %zu", path, size);
  if (mem_has_under(fs, path))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%.200s: is a folder of the set (files lie under it)", path);
  for (const char *s = strchr(path, '/'); s != NULL; s = strchr(s + 1, '/')) {
    size_t len = (size_t)(s - path);
    for (size_t i = 0; i < fs->n; i++)
      if (strncmp(fs->e[i].path, path, len) == 0 && fs->e[i].path[len] == '\0')
        return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%.200s: %.*s is a file of the set, not a folder", path,
                           (int)(len < 200 ? len : 200), path);
  }
  struct sf_vfs_blob *blob = NULL;
  const unsigned char *bytes = data;
  if (copy) {
    if (size > SIZE_MAX - sizeof *blob ||
        (blob = malloc(sizeof *blob + (size ? size : 1))) == NULL)
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%.200s: out of memory copying %zu bytes", path, size);
    atomic_init(&blob->refs, 1);
    blob->size = size;
    if (size) memcpy(blob->data, data, size);
    bytes = blob->data;
  }
  size_t i = mem_lower(fs, path);
  if (i < fs->n && strcmp(fs->e[i].path, path) == 0) { /* replace */
    blob_unref(fs->e[i].blob);
    fs->e[i].data = size ? bytes : NULL;
    fs->e[i].size = size;
    fs->e[i].blob = blob;
    return SF_OK;
  }
  char *p = strdup(path);
  if (p == NULL || (fs->n == fs->cap && fs->cap > SIZE_MAX / 2 / sizeof *fs->e)) {
    free(p);
    blob_unref(blob);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%.200s: out of memory", path);
  }
  if (fs->n == fs->cap) {
    size_t cap = fs->cap ? 2 * fs->cap : 16;
    mem_entry *e = realloc(fs->e, cap * sizeof *e);
    if (e == NULL) {
      free(p);
      blob_unref(blob);
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%.200s: out of memory", path);
    }
    fs->e = e;
    fs->cap = cap;
  }
  memmove(&fs->e[i + 1], &fs->e[i], (fs->n - i) * sizeof *fs->e);
  fs->e[i].path = p;
  fs->e[i].data = size ? bytes : NULL;
  fs->e[i].size = size;
  fs->e[i].blob = blob;
  fs->n++;
  return SF_OK;
}

size_t sf_vfs_mem_count(const sf_vfs *fs) { return fs && fs->memory ? fs->n : 0; }

/* ---- queries --------------------------------------------------------------------------------- */

const char *sf_vfs_label(const sf_vfs *fs) { return fs && fs->memory ? "memory:" : ""; }

int sf_vfs_is_memory(const sf_vfs *fs) { return fs && fs->memory; }

char *sf_vfs_join(const sf_vfs *fs, const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (s == NULL) return NULL;
  if (a == 0 && fs->memory) {
    memcpy(s, name, b + 1);
  } else {
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
  }
  return s;
}

int sf_vfs_is_file(const sf_vfs *fs, const char *path) {
  if (fs->memory) return mem_find(fs, path) != NULL;
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int sf_vfs_is_dir(const sf_vfs *fs, const char *path) {
  if (fs->memory) return path[0] == '\0' || mem_has_under(fs, path);
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int sf_vfs_exists(const sf_vfs *fs, const char *path) {
  if (fs->memory) return sf_vfs_is_file(fs, path) || sf_vfs_is_dir(fs, path);
  struct stat sb;
  return stat(path, &sb) == 0;
}

void sf_vfs_list_free(char **names, unsigned char *is_dir, size_t count) {
  for (size_t i = 0; names && i < count; i++) free(names[i]);
  free(names);
  free(is_dir);
}

typedef struct name_list {
  char **names;
  unsigned char *dirs;
  size_t n, cap;
} name_list;

static int list_push(name_list *l, const char *name, size_t len, int is_dir) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **nn = realloc(l->names, cap * sizeof *nn);
    if (nn == NULL) return 0;
    l->names = nn;
    unsigned char *nd = realloc(l->dirs, cap);
    if (nd == NULL) return 0;
    l->dirs = nd;
    l->cap = cap;
  }
  char *s = malloc(len + 1);
  if (s == NULL) return 0;
  memcpy(s, name, len);
  s[len] = '\0';
  l->names[l->n] = s;
  l->dirs[l->n] = (unsigned char)(is_dir != 0);
  l->n++;
  return 1;
}

typedef struct name_flag {
  char *name;
  unsigned char dir;
} name_flag;

static int cmp_name_flag(const void *a, const void *b) {
  return strcmp(((const name_flag *)a)->name, ((const name_flag *)b)->name);
}

/* Sorts the file system's entries by name (memory sets list in order already). */
static int list_sort(name_list *l) {
  if (l->n < 2) return 1;
  name_flag *t = malloc(l->n * sizeof *t);
  if (t == NULL) return 0;
  for (size_t i = 0; i < l->n; i++) t[i] = (name_flag){l->names[i], l->dirs[i]};
  qsort(t, l->n, sizeof *t, cmp_name_flag);
  for (size_t i = 0; i < l->n; i++) {
    l->names[i] = t[i].name;
    l->dirs[i] = t[i].dir;
  }
  free(t);
  return 1;
}

sf_status sf_vfs_list(const sf_vfs *fs, const char *dir, char ***out_names, unsigned char **out_is_dir,
                      size_t *out_count, sf_diag *d) {
  *out_names = NULL;
  if (out_is_dir) *out_is_dir = NULL;
  *out_count = 0;
  name_list l = {0};
  int ok = 1;
  if (fs->memory) {
    if (!sf_vfs_is_dir(fs, dir)) return sf_diag_set(d, SF_ERR_IO, "memory:%s: not a folder of the set", dir);
    size_t len = strlen(dir);
    for (size_t i = len ? mem_lower(fs, dir) : 0; ok && i < fs->n; i++) {
      const char *p = fs->e[i].path;
      if (len && (strncmp(p, dir, len) != 0)) break;
      if (len && p[len] != '/') continue;
      const char *rest = p + (len ? len + 1 : 0);
      const char *slash = strchr(rest, '/');
      size_t seg = slash ? (size_t)(slash - rest) : strlen(rest);
      /* Files of one subfolder are contiguous: name it once. */
      if (l.n && strlen(l.names[l.n - 1]) == seg && memcmp(l.names[l.n - 1], rest, seg) == 0) continue;
      ok = list_push(&l, rest, seg, slash != NULL);
    }
  } else {
    DIR *dp = opendir(dir);
    if (dp == NULL) return sf_diag_set(d, SF_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *de;
    while (ok && (de = readdir(dp)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char *full = sf_vfs_join(fs, dir, de->d_name);
      ok = full != NULL && list_push(&l, de->d_name, strlen(de->d_name), sf_vfs_is_dir(fs, full));
      free(full);
    }
    closedir(dp);
    ok = ok && list_sort(&l);
  }
  if (!ok) {
    sf_vfs_list_free(l.names, l.dirs, l.n);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s%s: out of memory listing the folder", sf_vfs_label(fs), dir);
  }
  *out_names = l.names;
  if (out_is_dir) *out_is_dir = l.dirs;
  else free(l.dirs);
  *out_count = l.n;
  return SF_OK;
}

/* ---- sequential reading ------------------------------------------------------------------------ */

struct sf_vfs_file {
  FILE *f; /* the file system's */
  const unsigned char *data;
  size_t size, pos;
  struct sf_vfs_blob *blob;
};

sf_vfs_file *sf_vfs_open(const sf_vfs *fs, const char *path, int *err) {
  const mem_entry *e = NULL;
  FILE *f = NULL;
  if (fs->memory) {
    e = mem_find(fs, path);
    if (e == NULL) {
      *err = sf_vfs_is_dir(fs, path) ? EISDIR : ENOENT;
      return NULL;
    }
  } else if ((f = fopen(path, "rb")) == NULL) {
    *err = errno;
    return NULL;
  }
  sf_vfs_file *h = calloc(1, sizeof *h);
  if (h == NULL) {
    if (f) fclose(f);
    *err = ENOMEM;
    return NULL;
  }
  h->f = f;
  if (e) {
    h->data = e->data;
    h->size = e->size;
    h->blob = e->blob;
    blob_ref(h->blob);
  }
  return h;
}

int sf_vfs_file_size(sf_vfs_file *h, uint64_t *size) {
  if (h->f == NULL) {
    *size = h->size;
    return 1;
  }
  struct stat st;
  if (fstat(fileno(h->f), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  *size = (uint64_t)st.st_size;
  return 1;
}

size_t sf_vfs_read(sf_vfs_file *h, void *buf, size_t n) {
  if (h->f) return fread(buf, 1, n, h->f);
  size_t left = h->size - h->pos;
  if (n > left) n = left;
  if (n) memcpy(buf, h->data + h->pos, n);
  h->pos += n;
  return n;
}

int sf_vfs_error(sf_vfs_file *h) { return h->f ? ferror(h->f) : 0; }

void sf_vfs_close(sf_vfs_file *h) {
  if (h == NULL) return;
  if (h->f) fclose(h->f);
  blob_unref(h->blob);
  free(h);
}

/* ---- mapping ------------------------------------------------------------------------------------- */

sf_vfs_map_result sf_vfs_map_file(const sf_vfs *fs, const char *path, sf_vfs_map *out, int *err) {
  memset(out, 0, sizeof *out);
  *err = 0;
  if (fs->memory) {
    const mem_entry *e = mem_find(fs, path);
    if (e == NULL) {
      *err = sf_vfs_is_dir(fs, path) ? EISDIR : ENOENT;
      return SF_VFS_MAP_OPEN_FAILED;
    }
    out->data = e->data;
    out->size = e->size;
    out->blob = e->blob;
    blob_ref(out->blob);
    return SF_VFS_MAPPED;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return SF_VFS_MAP_OPEN_FAILED;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return SF_VFS_MAP_NOT_REGULAR;
  }
  if ((unsigned long long)sb.st_size > (unsigned long long)SIZE_MAX) {
    close(fd);
    return SF_VFS_MAP_TOO_LARGE;
  }
  size_t size = (size_t)sb.st_size;
  if (size > 0) {
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      *err = errno;
      close(fd);
      out->size = size;
      return SF_VFS_MAP_FAILED;
    }
    out->os_addr = m;
    out->os_len = size;
    out->data = m;
  }
  close(fd);
  out->size = size;
  return SF_VFS_MAPPED;
}

void sf_vfs_drop_pages(const sf_vfs_map *m) {
  /* A private read-only file mapping never holds pages of its own: dropping them loses nothing. */
  if (m != NULL && m->os_addr != NULL) (void)madvise(m->os_addr, m->os_len, MADV_DONTNEED);
}

void sf_vfs_unmap(sf_vfs_map *m) {
  if (m == NULL) return;
  if (m->os_addr) munmap(m->os_addr, m->os_len);
  blob_unref(m->blob);
  memset(m, 0, sizeof *m);
}
