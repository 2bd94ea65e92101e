/* A model folder read into memory for tests (api_test_files, api_test_inspect): every regular
 * file under a folder, by relative path, and sf_files sets made of them. */
#ifndef SF_TEST_MEM_FOLDER_H
#define SF_TEST_MEM_FOLDER_H

#include <dirent.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"

typedef struct mem_file {
  char path[512]; /* relative to the model folder */
  unsigned char *data;
  size_t size;
} mem_file;

typedef struct mem_folder {
  mem_file *f;
  size_t n, cap;
} mem_folder;

static __attribute__((unused)) unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char *buf = NULL;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (buf = malloc(st.st_size ? (size_t)st.st_size : 1)) != NULL) {
    *size = (size_t)st.st_size;
    if (fread(buf, 1, *size, f) != *size) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

/* Every regular file under root/rel, recursively. */
static __attribute__((unused)) void walk(mem_folder *m, const char *root, const char *rel) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
  DIR *dp = opendir(dir);
  CHECK_MSG(dp != NULL, "cannot list %s", dir);
  if (dp == NULL) return;
  struct dirent *de;
  while ((de = readdir(dp)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    char sub[512], full[1600];
    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    struct stat st;
    if (stat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      walk(m, root, sub);
    } else if (S_ISREG(st.st_mode)) {
      if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 32;
        m->f = realloc(m->f, m->cap * sizeof *m->f);
        if (m->f == NULL) abort();
      }
      mem_file *f = &m->f[m->n];
      snprintf(f->path, sizeof f->path, "%s", sub);
      f->data = read_all(full, &f->size);
      CHECK_MSG(f->data != NULL, "cannot read %s", full);
      if (f->data) m->n++;
    }
  }
  closedir(dp);
}

static __attribute__((unused)) void mem_folder_free(mem_folder *m) {
  for (size_t i = 0; i < m->n; i++) free(m->f[i].data);
  free(m->f);
}

/* A deep copy, to edit. */
static __attribute__((unused)) mem_folder mem_folder_copy(const mem_folder *m) {
  mem_folder c = {0};
  c.f = calloc(m->n ? m->n : 1, sizeof *c.f);
  if (c.f == NULL) abort();
  c.n = c.cap = m->n;
  for (size_t i = 0; i < m->n; i++) {
    c.f[i] = m->f[i];
    c.f[i].data = malloc(m->f[i].size ? m->f[i].size : 1);
    if (c.f[i].data == NULL) abort();
    memcpy(c.f[i].data, m->f[i].data, m->f[i].size);
  }
  return c;
}

static __attribute__((unused)) const mem_file *find(const mem_folder *m, const char *path) {
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->f[i].path, path) == 0) return &m->f[i];
  return NULL;
}

static __attribute__((unused)) uint64_t checksum(const mem_folder *m) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < m->n; i++)
    for (size_t k = 0; k < m->f[i].size; k++) h = (h ^ m->f[i].data[k]) * 1099511628211ull;
  return h;
}

/* A set of m's files (copied or borrowed), leaving out those whose path starts with `skip`
 * (NULL: none). */
static __attribute__((unused)) sf_files *make_set(const mem_folder *m, int copy, const char *skip) {
  sf_files *files = NULL;
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  for (size_t i = 0; files && i < m->n; i++) {
    if (skip && strncmp(m->f[i].path, skip, strlen(skip)) == 0) continue;
    sf_status s = sf_files_add(files, m->f[i].path, m->f[i].data, m->f[i].size, copy);
    CHECK_MSG(s == SF_OK, "add %s: %s", m->f[i].path, sf_last_error());
  }
  return files;
}

#endif
