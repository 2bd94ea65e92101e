/* The virtual file system (io/vfs.h): memory sets (paths, folders, listing, reading, mapping,
 * lifetimes), the file system backend, and the readers on top of it: safetensors over a
 * memory buffer (every truncation refused, tensors used in place), and a model folder,
 * tokenizer and sharded weights read from memory exactly as from disk. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "io/vfs.h"
#include "test.h"
#include "text/tokenizer.h"

static sf_diag diag;

static void add(sf_vfs *fs, const char *path, const void *data, size_t size, int copy) {
  sf_diag_clear(&diag);
  sf_status s = sf_vfs_mem_add(fs, path, data, size, copy, &diag);
  CHECK_MSG(s == SF_OK, "add %s: %s", path, diag.msg);
}

static void add_text(sf_vfs *fs, const char *path, const char *text) { add(fs, path, text, strlen(text), 1); }

/* The whole file through the sequential reader; NULL if it cannot be opened. */
static char *read_all(const sf_vfs *fs, const char *path, size_t *len) {
  int err = 0;
  sf_vfs_file *f = sf_vfs_open(fs, path, &err);
  if (f == NULL) return NULL;
  uint64_t size = 0;
  CHECK(sf_vfs_file_size(f, &size));
  char *buf = malloc((size_t)size + 1);
  size_t n = 0, r;
  /* Odd-sized chunks, to cross the end in the middle of one. */
  while (buf && (r = sf_vfs_read(f, buf + n, (size_t)size + 1 - n < 7 ? (size_t)size + 1 - n : 7)) > 0) n += r;
  CHECK(!sf_vfs_error(f));
  sf_vfs_close(f);
  CHECK_EQ_INT(n, size);
  if (buf) buf[n] = '\0';
  *len = n;
  return buf;
}

/* names[0..n) joined as "a b/ c" (folders with a slash), for comparisons. */
static void list_text(const sf_vfs *fs, const char *dir, char *out, size_t cap) {
  char **names = NULL;
  unsigned char *dirs = NULL;
  size_t n = 0;
  out[0] = '\0';
  sf_diag_clear(&diag);
  if (sf_vfs_list(fs, dir, &names, &dirs, &n, &diag) != SF_OK) {
    snprintf(out, cap, "(error: %s)", diag.msg);
    return;
  }
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%s%s", i ? " " : "", names[i], dirs[i] ? "/" : "");
  sf_vfs_list_free(names, dirs, n);
}

/* ---- memory sets ------------------------------------------------------------------------------ */

static void test_paths(void) {
  const char *good[] = {"a", "model_index.json", "unet/config.json", "a/b/c/d.bin", "a.b/..c", "...", "a/.x"};
  const char *bad[] = {"", "/a", "a/", "a//b", ".", "..", "../x", "a/../b", "a/./b", "./a", "a\\b", "a/.."};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK_MSG(sf_vfs_mem_path_ok(good[i]), "%s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK_MSG(!sf_vfs_mem_path_ok(bad[i]), "%s", bad[i]);
  CHECK(!sf_vfs_mem_path_ok(NULL));
}

static void test_memory_set(void) {
  sf_vfs *fs = sf_vfs_mem_create();
  CHECK(fs != NULL);
  if (fs == NULL) return;
  CHECK(sf_vfs_is_memory(fs) && !sf_vfs_is_memory(sf_vfs_os()));
  CHECK(strcmp(sf_vfs_label(fs), "memory:") == 0 && strcmp(sf_vfs_label(sf_vfs_os()), "") == 0);
  /* The root exists (a folder) even when empty. */
  CHECK(sf_vfs_is_dir(fs, "") && sf_vfs_exists(fs, "") && !sf_vfs_is_file(fs, ""));
  char text[512];
  list_text(fs, "", text, sizeof text);
  CHECK_MSG(strcmp(text, "") == 0, "%s", text);

  static const char borrowed[] = "borrowed bytes";
  add_text(fs, "unet/config.json", "{\"a\": 1}");
  add(fs, "unet/w.bin", borrowed, sizeof borrowed, 0);
  add_text(fs, "unet.txt", "x");
  add_text(fs, "unet-x/b", "y");
  add_text(fs, "a/b/c/d", "deep");
  add(fs, "empty", NULL, 0, 0);
  CHECK_EQ_INT(sf_vfs_mem_count(fs), 6);

  CHECK(sf_vfs_is_file(fs, "unet/config.json") && !sf_vfs_is_dir(fs, "unet/config.json"));
  CHECK(sf_vfs_is_dir(fs, "unet") && !sf_vfs_is_file(fs, "unet") && sf_vfs_exists(fs, "unet"));
  CHECK(!sf_vfs_exists(fs, "une") && !sf_vfs_exists(fs, "unet/") && !sf_vfs_exists(fs, "unet/config"));
  CHECK(sf_vfs_is_dir(fs, "a") && sf_vfs_is_dir(fs, "a/b") && sf_vfs_is_dir(fs, "a/b/c") && !sf_vfs_is_dir(fs, "a/b/c/d"));
  CHECK(sf_vfs_is_file(fs, "empty"));

  /* Listing: sorted, each folder once, even with "unet.txt" and "unet-x" sorting around "unet/". */
  list_text(fs, "", text, sizeof text);
  CHECK_MSG(strcmp(text, "a/ empty unet-x/ unet.txt unet/") == 0, "%s", text);
  list_text(fs, "unet", text, sizeof text);
  CHECK_MSG(strcmp(text, "config.json w.bin") == 0, "%s", text);
  list_text(fs, "a/b", text, sizeof text);
  CHECK_MSG(strcmp(text, "c/") == 0, "%s", text);
  list_text(fs, "nope", text, sizeof text);
  CHECK_MSG(strstr(text, "error") && strstr(text, "memory:nope"), "%s", text);
  list_text(fs, "unet.txt", text, sizeof text);
  CHECK_MSG(strstr(text, "error") != NULL, "%s", text);

  /* Joining: the root is "" in memory, a plain prefix on the file system. */
  char *j1 = sf_vfs_join(fs, "", "x.json"), *j2 = sf_vfs_join(fs, "unet", "x.json");
  char *j3 = sf_vfs_join(sf_vfs_os(), "/m", "x.json"), *j4 = sf_vfs_join(sf_vfs_os(), "", "x.json");
  CHECK(j1 && strcmp(j1, "x.json") == 0);
  CHECK(j2 && strcmp(j2, "unet/x.json") == 0);
  CHECK(j3 && strcmp(j3, "/m/x.json") == 0);
  CHECK(j4 && strcmp(j4, "/x.json") == 0); /* as the readers always formed paths */
  free(j1);
  free(j2);
  free(j3);
  free(j4);

  /* Refusals, each naming the path. */
  struct {
    const char *path;
    const void *data;
    size_t size;
    const char *needle;
  } refused[] = {
      {"../x", "x", 1, "\"../x\""},
      {"unet", "x", 1, "unet: is a folder"},
      {"unet/config.json/x", "x", 1, "unet/config.json is a file of the set"},
      {"a/b", "x", 1, "a/b: is a folder"},
      {"z", NULL, 3, "z: data is NULL but size is 3"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    sf_diag_clear(&diag);
    CHECK_EQ_INT(sf_vfs_mem_add(fs, refused[i].path, refused[i].data, refused[i].size, 1, &diag),
                 SF_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(diag.msg, refused[i].needle) != NULL, "'%s' lacks '%s'", diag.msg, refused[i].needle);
  }
  sf_diag_clear(&diag);
  CHECK_EQ_INT(sf_vfs_mem_add((sf_vfs *)sf_vfs_os(), "a", "x", 1, 1, &diag), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_vfs_mem_count(fs), 6);

  /* Sequential reading. */
  size_t len = 0;
  char *got = read_all(fs, "unet/config.json", &len);
  CHECK(got && len == 8 && memcmp(got, "{\"a\": 1}", 8) == 0);
  free(got);
  got = read_all(fs, "empty", &len);
  CHECK(got && len == 0);
  free(got);
  int err = 0;
  CHECK(sf_vfs_open(fs, "missing.json", &err) == NULL && err == ENOENT);
  CHECK(sf_vfs_open(fs, "unet", &err) == NULL && err == EISDIR);

  /* Mapping: borrowed files in place, copied ones referenced. */
  sf_vfs_map mb, mc, me, mx;
  CHECK_EQ_INT(sf_vfs_map_file(fs, "unet/w.bin", &mb, &err), SF_VFS_MAPPED);
  CHECK(mb.data == (const void *)borrowed && mb.size == sizeof borrowed);
  CHECK_EQ_INT(sf_vfs_map_file(fs, "unet/config.json", &mc, &err), SF_VFS_MAPPED);
  CHECK(mc.size == 8 && memcmp(mc.data, "{\"a\": 1}", 8) == 0);
  CHECK_EQ_INT(sf_vfs_map_file(fs, "empty", &me, &err), SF_VFS_MAPPED);
  CHECK(me.data == NULL && me.size == 0);
  CHECK_EQ_INT(sf_vfs_map_file(fs, "nope", &mx, &err), SF_VFS_MAP_OPEN_FAILED);
  CHECK(err == ENOENT && mx.data == NULL);
  CHECK_EQ_INT(sf_vfs_map_file(fs, "a/b", &mx, &err), SF_VFS_MAP_OPEN_FAILED);
  CHECK(err == EISDIR);

  /* Replacing a file: a mapping keeps the old bytes; new readers see the new ones. */
  add_text(fs, "unet/config.json", "{\"b\": 22}");
  CHECK_EQ_INT(sf_vfs_mem_count(fs), 6);
  got = read_all(fs, "unet/config.json", &len);
  CHECK(got && len == 9 && strcmp(got, "{\"b\": 22}") == 0);
  free(got);
  CHECK(memcmp(mc.data, "{\"a\": 1}", 8) == 0);
  sf_vfs_map mc2;
  CHECK_EQ_INT(sf_vfs_map_file(fs, "unet/config.json", &mc2, &err), SF_VFS_MAPPED);

  /* The set goes: mappings of copied files stay valid (ASan would see a use after free). */
  sf_vfs_mem_destroy(fs);
  CHECK(memcmp(mc.data, "{\"a\": 1}", 8) == 0);
  CHECK(mc2.size == 9 && memcmp(mc2.data, "{\"b\": 22}", 9) == 0);
  CHECK(memcmp(mb.data, "borrowed bytes", sizeof borrowed) == 0);
  sf_vfs_unmap(&mc);
  CHECK(mc.data == NULL && mc.blob == NULL);
  sf_vfs_unmap(&mc); /* a cleared map is a no-op */
  sf_vfs_unmap(&mc2);
  sf_vfs_unmap(&mb);
  sf_vfs_unmap(&me);
  sf_vfs_unmap(NULL);
  sf_vfs_mem_destroy(NULL);
  sf_vfs_mem_destroy((sf_vfs *)sf_vfs_os()); /* a no-op */
}

/* ---- the file system backend ------------------------------------------------------------------- */

static char tmp_root[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (f == NULL) return;
  fputs(text, f);
  fclose(f);
}

static void test_os(void) {
  const sf_vfs *os = sf_vfs_os();
  strcpy(tmp_root, "/tmp/sf_test_vfs_XXXXXX");
  CHECK(mkdtemp(tmp_root) != NULL);
  char p[256], text[512];
  snprintf(p, sizeof p, "%s/sub", tmp_root);
  CHECK(mkdir(p, 0700) == 0);
  CHECK(sf_vfs_is_dir(os, p) && !sf_vfs_is_file(os, p) && sf_vfs_exists(os, p));
  snprintf(p, sizeof p, "%s/b.txt", tmp_root);
  write_file(p, "hello");
  CHECK(sf_vfs_is_file(os, p) && !sf_vfs_is_dir(os, p));
  snprintf(p, sizeof p, "%s/a.bin", tmp_root);
  write_file(p, "");
  list_text(os, tmp_root, text, sizeof text);
  CHECK_MSG(strcmp(text, "a.bin b.txt sub/") == 0, "%s", text);
  snprintf(p, sizeof p, "%s/nope", tmp_root);
  list_text(os, p, text, sizeof text);
  CHECK_MSG(strstr(text, "error") != NULL, "%s", text);

  size_t len = 0;
  snprintf(p, sizeof p, "%s/b.txt", tmp_root);
  char *got = read_all(os, p, &len);
  CHECK(got && strcmp(got, "hello") == 0);
  free(got);
  sf_vfs_map m;
  int err;
  CHECK_EQ_INT(sf_vfs_map_file(os, p, &m, &err), SF_VFS_MAPPED);
  CHECK(m.size == 5 && memcmp(m.data, "hello", 5) == 0);
  sf_vfs_unmap(&m);
  snprintf(p, sizeof p, "%s/a.bin", tmp_root);
  CHECK_EQ_INT(sf_vfs_map_file(os, p, &m, &err), SF_VFS_MAPPED);
  CHECK(m.size == 0 && m.data == NULL);
  sf_vfs_unmap(&m);
  snprintf(p, sizeof p, "%s/sub", tmp_root);
  CHECK_EQ_INT(sf_vfs_map_file(os, p, &m, &err), SF_VFS_MAP_NOT_REGULAR);
  snprintf(p, sizeof p, "%s/nope", tmp_root);
  CHECK_EQ_INT(sf_vfs_map_file(os, p, &m, &err), SF_VFS_MAP_OPEN_FAILED);
  CHECK(err == ENOENT);
  CHECK(sf_vfs_open(os, p, &err) == NULL && err == ENOENT);
  nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- safetensors over memory ------------------------------------------------------------------ */

/* F32 tensors "a" [3] and "b" [2, 2] in one buffer (malloc'd, *size bytes). */
static unsigned char *small_st(size_t *size) {
  const char *h = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[12,28]}}";
  size_t hl = strlen(h);
  *size = 8 + hl + 28;
  unsigned char *buf = malloc(*size);
  if (buf == NULL) return NULL;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, h, hl);
  for (int i = 0; i < 7; i++) {
    float v = (float)i + 0.5f;
    memcpy(buf + 8 + hl + 4 * (size_t)i, &v, 4);
  }
  return buf;
}

static void test_safetensors_memory(void) {
  size_t size = 0;
  unsigned char *buf = small_st(&size);
  CHECK(buf != NULL);
  if (buf == NULL) return;
  /* Every proper prefix is refused, naming the file; a copy of exactly that many bytes makes
   * any read past the end visible to ASan. */
  for (size_t cut = 0; cut < size; cut++) {
    sf_vfs *fs = sf_vfs_mem_create();
    add(fs, "w.safetensors", buf, cut, 1);
    sf_diag_clear(&diag);
    sf_safetensors *st = sf_st_open_vfs(fs, "w.safetensors", NULL, &diag);
    CHECK_MSG(st == NULL, "a %zu-byte prefix opened", cut);
    sf_st_close(st);
    CHECK_MSG(diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "file memory:w.safetensors: ") == diag.msg,
              "cut %zu: %s", cut, diag.msg);
    sf_vfs_mem_destroy(fs);
  }
  /* Whole and borrowed: tensors point into the caller's buffer, which stays untouched and
   * is not unmapped or freed by sf_st_close. */
  sf_vfs *fs = sf_vfs_mem_create();
  add(fs, "unet/w.safetensors", buf, size, 0);
  sf_diag_clear(&diag);
  sf_safetensors *st = sf_st_open_vfs(fs, "unet/w.safetensors", "shown name", &diag);
  CHECK_MSG(st != NULL, "%s", diag.msg);
  if (st) {
    const sf_st_tensor *b = sf_st_find(st, "b");
    CHECK(b && (const unsigned char *)b->data >= buf && (const unsigned char *)b->data + b->nbytes == buf + size);
    CHECK(strcmp(sf_st_path(st), "unet/w.safetensors") == 0 && strcmp(sf_st_name(st), "shown name") == 0);
    CHECK(sf_st_metadata(st, "k") && strcmp(sf_st_metadata(st, "k"), "v") == 0);
    float out[4];
    sf_st_to_f32(b, out);
    CHECK(out[0] == 3.5f && out[3] == 6.5f);
  }
  sf_st_close(st);
  /* Copied: usable after the set is gone. */
  add(fs, "c.safetensors", buf, size, 1);
  st = sf_st_open_vfs(fs, "c.safetensors", NULL, &diag);
  CHECK(st != NULL && strcmp(sf_st_name(st), "memory:c.safetensors") == 0);
  sf_vfs_mem_destroy(fs);
  if (st) {
    float out[3];
    sf_st_to_f32(sf_st_find(st, "a"), out);
    CHECK(out[0] == 0.5f && out[2] == 2.5f);
  }
  sf_st_close(st);
  unsigned char *check = small_st(&size);
  CHECK(check && memcmp(check, buf, size) == 0);
  free(check);
  free(buf);
}

/* ---- a model folder from memory, as from disk -------------------------------------------------- */

/* Adds every file under disk folder dir/rel to fs, borrowing the file system's mappings (kept in
 * maps[] until the end: zero-copy both ways). */
typedef struct mirror {
  sf_vfs_map maps[64];
  size_t n;
} mirror;

static void mirror_folder(mirror *mr, sf_vfs *fs, const char *dir, const char *rel) {
  char full[4800];
  snprintf(full, sizeof full, "%s%s%s", dir, *rel ? "/" : "", rel);
  char **names = NULL;
  unsigned char *dirs = NULL;
  size_t n = 0;
  sf_diag_clear(&diag);
  CHECK_MSG(sf_vfs_list(sf_vfs_os(), full, &names, &dirs, &n, &diag) == SF_OK, "%s", diag.msg);
  for (size_t i = 0; i < n; i++) {
    char sub[512], path[5400];
    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (dirs[i]) {
      mirror_folder(mr, fs, dir, sub);
      continue;
    }
    int err;
    CHECK(mr->n < 64);
    if (mr->n >= 64) break;
    sf_vfs_map *m = &mr->maps[mr->n];
    CHECK_EQ_INT(sf_vfs_map_file(sf_vfs_os(), path, m, &err), SF_VFS_MAPPED);
    mr->n++;
    add(fs, sub, m->data, m->size, 0);
  }
  sf_vfs_list_free(names, dirs, n);
}

static void same_listing(const sf_vfs *fs, const char *dir, const char *rel) {
  char full[4800], a[2048], b[2048];
  snprintf(full, sizeof full, "%s%s%s", dir, *rel ? "/" : "", rel);
  list_text(sf_vfs_os(), full, a, sizeof a);
  list_text(fs, rel, b, sizeof b);
  CHECK_MSG(strcmp(a, b) == 0, "%s: disk \"%s\", memory \"%s\"", rel, a, b);
}

static void same_folder(const sf_model_folder *a, const sf_model_folder *b) {
  CHECK_EQ_INT(a->n_components, b->n_components);
  CHECK(strcmp(b->dir, "memory") == 0);
  for (size_t i = 0; i < a->n_components && i < b->n_components; i++) {
    const sf_component *x = &a->components[i], *y = &b->components[i];
    CHECK_MSG(strcmp(x->name, y->name) == 0 && x->kind == y->kind && x->is_variant == y->is_variant &&
                  x->sharded == y->sharded && x->config_only == y->config_only,
              "component %s", x->name);
    CHECK(strcmp(y->dir, x->name) == 0); /* "unet": the memory path */
    CHECK((x->weights_file == NULL) == (y->weights_file == NULL));
    if (x->weights_file && y->weights_file) CHECK(strcmp(x->weights_file, y->weights_file) == 0);
    CHECK_EQ_INT(sf_weights_count(x->weights), sf_weights_count(y->weights));
    for (size_t k = 0; k < sf_weights_count(x->weights); k++) {
      const sf_st_tensor *tx = sf_weights_at(x->weights, k), *ty = sf_weights_at(y->weights, k);
      CHECK(strcmp(tx->name, ty->name) == 0 && tx->nbytes == ty->nbytes &&
            memcmp(tx->data, ty->data, (size_t)tx->nbytes) == 0);
    }
  }
}

static void test_fixture_folder(const char *fx) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  sf_vfs *fs = sf_vfs_mem_create();
  mirror mr = {0};
  mirror_folder(&mr, fs, dir, "");
  CHECK(mr.n >= 10);
  const char *folders[] = {"", "unet", "tokenizer", "vae"};
  for (size_t i = 0; i < 4; i++) same_listing(fs, dir, folders[i]);
  const char *variants[] = {NULL, "fp16"};
  for (int v = 0; v < 2; v++) {
    sf_diag da = {0}, db = {0};
    sf_model_folder *a = sf_model_folder_open(dir, variants[v], &da);
    sf_model_folder *b = sf_model_folder_open_vfs(fs, "", variants[v], 0, &db);
    CHECK_MSG(a && b, "%s / %s", da.msg, db.msg);
    if (a && b) same_folder(a, b);
    const sf_component *u = b ? sf_model_folder_find(b, "unet") : NULL;
    CHECK(u && u->is_variant == (v == 1));
    /* The weights are used in place: the tensors point into the borrowed mappings. */
    int inside = 0;
    for (size_t k = 0; u && k < mr.n; k++) {
      const unsigned char *base = mr.maps[k].data, *t = sf_weights_at(u->weights, 0)->data;
      if (base && t >= base && t < base + mr.maps[k].size) inside = 1;
    }
    CHECK(inside);
    sf_model_folder_close(a);
    sf_model_folder_close(b);
  }
  /* The tokenizer reads the same vocabulary. */
  char tok[4300];
  snprintf(tok, sizeof tok, "%s/tokenizer", dir);
  sf_tokenizer *ta = sf_tokenizer_load_dir(tok, &diag), *tb = sf_tokenizer_load_dir_vfs(fs, "tokenizer", &diag);
  CHECK(ta && tb);
  if (ta && tb) {
    int32_t ia[77], ib[77];
    const char *prompt = "A photo of an astronaut riding a horse on Mars, 4k!";
    CHECK_EQ_INT(sf_tokenizer_encode(ta, prompt, strlen(prompt), 49407, ia, 77, NULL, &diag), SF_OK);
    CHECK_EQ_INT(sf_tokenizer_encode(tb, prompt, strlen(prompt), 49407, ib, 77, NULL, &diag), SF_OK);
    CHECK(memcmp(ia, ib, sizeof ia) == 0);
    CHECK_EQ_INT(sf_tokenizer_vocab_size(ta), sf_tokenizer_vocab_size(tb));
  }
  sf_tokenizer_free(ta);
  sf_tokenizer_free(tb);
  sf_diag_clear(&diag);
  CHECK(sf_tokenizer_load_dir_vfs(fs, "unet", &diag) == NULL);
  CHECK_MSG(diag.status == SF_ERR_IO && strstr(diag.msg, "memory:unet/vocab.json: cannot open") == diag.msg, "%s",
            diag.msg);
  /* JSON from memory: errors name the file. */
  add_text(fs, "bad.json", "{\"a\": [1, 2,]}");
  sf_diag_clear(&diag);
  CHECK(sf_json_parse_vfs(fs, "bad.json", NULL, 1 << 20, 0, &diag) == NULL);
  CHECK_MSG(diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "memory:bad.json: ") == diag.msg, "%s", diag.msg);
  sf_diag_clear(&diag);
  CHECK(sf_json_parse_vfs(fs, "model_index.json", NULL, 10, 0, &diag) == NULL);
  CHECK_MSG(diag.status == SF_ERR_IO && strstr(diag.msg, "over the 10-byte limit"), "%s", diag.msg);
  sf_json_doc *doc = sf_json_parse_vfs(fs, "unet/config.json", NULL, 1 << 20, SF_JSON_ALLOW_NONFINITE, &diag);
  CHECK(doc && sf_json_get(sf_json_root(doc), "block_out_channels") != NULL);
  sf_json_free(doc);
  sf_vfs_mem_destroy(fs);
  for (size_t k = 0; k < mr.n; k++) sf_vfs_unmap(&mr.maps[k]);
}

/* Sharded weights, and a component opened by itself, from memory; messages name memory paths. */
static void test_sharded_memory(void) {
  size_t size = 0;
  unsigned char *st = small_st(&size);
  sf_vfs *fs = sf_vfs_mem_create();
  if (st == NULL || fs == NULL) {
    CHECK(0);
    free(st);
    sf_vfs_mem_destroy(fs);
    return;
  }
  add_text(fs, "model_index.json", "{\"unet\": [\"diffusers\", \"UNet2DConditionModel\"]}");
  add_text(fs, "unet/config.json", "{\"_class_name\": \"UNet2DConditionModel\"}");
  add_text(fs, "unet/diffusion_pytorch_model.safetensors.index.json",
           "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\"}}");
  add(fs, "unet/s1.safetensors", st, size, 0);
  sf_diag_clear(&diag);
  sf_model_folder *m = sf_model_folder_open_vfs(fs, "", NULL, 0, &diag);
  CHECK_MSG(m != NULL, "%s", diag.msg);
  const sf_component *u = sf_model_folder_find(m, "unet");
  CHECK(u && u->sharded && sf_weights_count(u->weights) == 2);
  sf_model_folder_close(m);
  /* A component folder by itself. */
  sf_component *c = sf_component_open_vfs(fs, "unet", NULL, &diag);
  CHECK_MSG(c && c->sharded && strcmp(c->name, "unet") == 0, "%s", diag.msg);
  sf_component_close(c);

  add_text(fs, "unet/diffusion_pytorch_model.safetensors.index.json",
           "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}");
  sf_diag_clear(&diag);
  m = sf_model_folder_open_vfs(fs, "", NULL, 0, &diag);
  CHECK(m == NULL);
  sf_model_folder_close(m);
  CHECK_MSG(diag.status == SF_ERR_IO &&
                strcmp(diag.msg, "memory:unet/diffusion_pytorch_model.safetensors.index.json lists shard "
                                 "memory:unet/s2.safetensors, which is missing") == 0,
            "%s", diag.msg);
  sf_diag_clear(&diag);
  c = sf_component_open_vfs(fs, "vae", NULL, &diag);
  CHECK(c == NULL);
  CHECK_MSG(diag.status == SF_ERR_IO && strstr(diag.msg, "memory:vae: no such folder") == diag.msg, "%s", diag.msg);
  sf_diag_clear(&diag);
  CHECK(sf_model_folder_open_vfs(fs, "unet", NULL, 0, &diag) == NULL);
  CHECK_MSG(strcmp(diag.msg, "memory:unet/model_index.json is missing (not a diffusers folder?)") == 0, "%s",
            diag.msg);
  sf_vfs_mem_destroy(fs);
  free(st);
}

int main(void) {
  test_paths();
  test_memory_set();
  test_os();
  test_safetensors_memory();
  test_sharded_memory();
  const char *fx = sf_test_fixtures();
  if (fx != NULL) test_fixture_folder(fx);
  else fprintf(stderr, "(the fixture comparison was skipped)\n");
  TEST_MAIN_END();
}
