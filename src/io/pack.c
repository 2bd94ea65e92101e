/* Pack files (see pack.h): writing from blob descriptors, and validating a file before any blob
 * is read. The reader treats the file as hostile: every count, offset and size is checked against
 * the file's size with overflow-safe arithmetic before it is used, names are bounded and NUL-free,
 * blobs are aligned and do not overlap each other or the header and index. */
#include "io/pack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/sha256.h"
#include "io/vfs.h"

struct sf_pack {
  char *label;
  sf_vfs_map map; /* of a file; cleared for memory packs */
  const unsigned char *base;
  size_t size;
  sf_pack_info info;
  sf_pack_blob *blobs;            /* file (index) order */
  size_t n;
  const sf_pack_blob **by_name;   /* sorted by (network, name) */
  uint64_t range_lo[4], range_hi[4]; /* per network bit: the bytes its blobs span */
};

/* ---- little-endian fields ---- */

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

/* zlib's crc32 takes 32-bit lengths. */
static uint32_t crc_update(uint32_t crc, const void *data, size_t n) {
  const unsigned char *p = data;
  uLong c = crc;
  while (n > 0) {
    const size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    c = crc32(c, p, (uInt)chunk);
    p += chunk;
    n -= chunk;
  }
  return (uint32_t)c;
}
static uint32_t crc_of(const void *data, size_t n) { return crc_update((uint32_t)crc32(0L, Z_NULL, 0), data, n); }

size_t sf_pack_dtype_bytes(uint32_t dtype) {
  return dtype == SF_PACK_F32 ? 4 : dtype == SF_PACK_F16 ? 2 : dtype == SF_PACK_I8 ? 1 : 0;
}
const char *sf_pack_dtype_name(uint32_t dtype) {
  return dtype == SF_PACK_F32 ? "f32" : dtype == SF_PACK_F16 ? "f16" : dtype == SF_PACK_I8 ? "i8" : "?";
}
const char *sf_pack_kind_name(uint32_t kind) {
  static const char *names[] = {"?", "panels", "bias", "scale", "tensor"};
  return kind >= 1 && kind <= 4 ? names[kind] : "?";
}

int sf_pack_config_slot(uint32_t network) {
  switch (network) {
    case 1: return 0;         /* SF_NET_TEXT_ENCODER */
    case 2: return 1;         /* SF_NET_UNET */
    case 4: case 8: return 2; /* SF_NET_VAE_DECODER, SF_NET_VAE_ENCODER */
    default: return -1;
  }
}

static int net_bit_index(uint32_t network) {
  for (int i = 0; i < 4; i++)
    if (network == (1u << i)) return i;
  return -1;
}

/* ---- config hash ---- */

static void hash_bytes(sf_sha256 *s, char tag, const void *p, size_t n) {
  unsigned char len[9];
  len[0] = (unsigned char)tag;
  put64(len + 1, (uint64_t)n);
  sf_sha256_update(s, len, sizeof len);
  if (n) sf_sha256_update(s, p, n);
}

static void hash_json(sf_sha256 *s, const sf_json *v, int top) {
  switch (v->type) {
    case SF_JSON_NULL: hash_bytes(s, 'n', NULL, 0); break;
    case SF_JSON_BOOL: hash_bytes(s, v->u.boolean ? 't' : 'f', NULL, 0); break;
    case SF_JSON_NUMBER: hash_bytes(s, '#', v->u.num.text, v->u.num.text_len); break;
    case SF_JSON_STRING: hash_bytes(s, '"', v->u.str, v->len); break;
    case SF_JSON_ARRAY:
      hash_bytes(s, '[', NULL, 0);
      for (size_t i = 0; i < v->len; i++) hash_json(s, &v->u.items[i], 0);
      hash_bytes(s, ']', NULL, 0);
      break;
    case SF_JSON_OBJECT:
      hash_bytes(s, '{', NULL, 0);
      for (size_t i = 0; i < v->len; i++) {
        const char *k = v->u.obj.keys[i];
        const size_t kl = v->u.obj.key_lens[i];
        if (top && kl > 0 && k[0] == '_' && !(kl == 11 && memcmp(k, "_class_name", 11) == 0)) continue;
        hash_bytes(s, 'k', k, kl);
        hash_json(s, &v->u.obj.values[i], 0);
      }
      hash_bytes(s, '}', NULL, 0);
      break;
  }
}

void sf_pack_config_hash(const sf_json *config, uint8_t out[32]) {
  sf_sha256 s;
  sf_sha256_init(&s);
  static const char domain[] = "snapfusion pack config v1";
  sf_sha256_update(&s, domain, sizeof domain);
  if (config != NULL) hash_json(&s, config, 1);
  sf_sha256_final(&s, out);
}

/* ---- checks shared by the writer and the reader ---- */

/* A name: 1..SF_PACK_NAME_BYTES-1 printable ASCII bytes (no space). */
static int name_ok(const char *name, size_t *len) {
  size_t n = 0;
  while (n < SF_PACK_NAME_BYTES && name[n] != '\0') {
    if ((unsigned char)name[n] <= 0x20 || (unsigned char)name[n] >= 0x7f) return 0;
    n++;
  }
  if (len) *len = n;
  return n > 0 && n < SF_PACK_NAME_BYTES;
}

/* The blob's fields without its place: kind, dtype, dims, size = product * dtype size (no
 * overflow), param. NULL when fine, else what is wrong. Whether panels fit a layout (the header's
 * NR, the architecture's shapes) is the weight source's check (graph/wsrc.h), made after the
 * pipeline has checked that this CPU runs the layout at all. */
static const char *blob_fields_problem(const sf_pack_blob *b, uint32_t networks) {
  if (net_bit_index(b->network) < 0) return "its network is not one sf_network bit";
  if ((b->network & networks) == 0) return "its network is not among the header's networks";
  if (b->kind < SF_PACK_PANELS || b->kind > SF_PACK_TENSOR) return "unknown kind";
  const size_t es = sf_pack_dtype_bytes(b->dtype);
  if (es == 0) return "unknown dtype";
  if (b->ndim < 1 || b->ndim > SF_PACK_MAX_DIMS) return "ndim is not 1..4";
  uint64_t count = 1;
  for (uint32_t i = 0; i < SF_PACK_MAX_DIMS; i++) {
    if (i >= b->ndim) {
      if (b->shape[i] != 0) return "a dimension past ndim is not 0";
      continue;
    }
    if (b->shape[i] == 0) return "a dimension is 0";
    if (count > UINT64_MAX / b->shape[i]) return "its shape overflows";
    count *= b->shape[i];
  }
  if (count > UINT64_MAX / es || count * es != b->size) return "its size is not its shape times its dtype's size";
  switch (b->kind) {
    case SF_PACK_PANELS: /* [tiles, k, nr], tiles = ceil(n / nr) (their product does not overflow) */
      if (b->ndim != 3) return "panels are not [tiles, k, NR]";
      if (b->param == 0 || b->param > b->shape[0] * b->shape[2] || b->param <= (b->shape[0] - 1) * b->shape[2])
        return "its output channels do not fill its last tile";
      break;
    case SF_PACK_BIAS:
    case SF_PACK_SCALE:
      if (b->ndim != 1 || b->dtype != SF_PACK_F32) return "not an f32 vector";
      if (b->param != 0) return "param is not 0";
      break;
    default:
      if (b->dtype == SF_PACK_I8) return "an i8 tensor";
      if (b->param != 0) return "param is not 0";
      break;
  }
  return NULL;
}

static int cmp_key(uint32_t na, const char *a, uint32_t nb, const char *b) {
  if (na != nb) return na < nb ? -1 : 1;
  return strcmp(a, b);
}
static int cmp_by_name(const void *x, const void *y) {
  const sf_pack_blob *a = *(const sf_pack_blob *const *)x, *b = *(const sf_pack_blob *const *)y;
  return cmp_key(a->network, a->name, b->network, b->name);
}
static int cmp_by_offset(const void *x, const void *y) {
  const sf_pack_blob *a = *(const sf_pack_blob *const *)x, *b = *(const sf_pack_blob *const *)y;
  return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* ---- writing ---- */

static void encode_entry(unsigned char *e, const sf_pack_blob *b) {
  memset(e, 0, SF_PACK_ENTRY_BYTES);
  memcpy(e, b->name, strlen(b->name));
  put32(e + SF_PACK_E_NETWORK, b->network);
  put32(e + SF_PACK_E_KIND, b->kind);
  put32(e + SF_PACK_E_DTYPE, b->dtype);
  put32(e + SF_PACK_E_NDIM, b->ndim);
  for (int i = 0; i < SF_PACK_MAX_DIMS; i++) put64(e + SF_PACK_E_SHAPE + 8 * i, b->shape[i]);
  put64(e + SF_PACK_E_PARAM, b->param);
  put64(e + SF_PACK_E_OFFSET, b->offset);
  put64(e + SF_PACK_E_SIZE, b->size);
  put32(e + SF_PACK_E_CRC, b->crc);
}

static void encode_header(unsigned char *h, const sf_pack_info *info, uint32_t count, uint64_t index_offset,
                          uint64_t file_bytes, uint32_t index_crc) {
  memset(h, 0, SF_PACK_HEADER_BYTES);
  memcpy(h, SF_PACK_MAGIC, 8);
  put32(h + SF_PACK_OFF_VERSION, SF_PACK_VERSION);
  put32(h + 12, SF_PACK_HEADER_BYTES);
  put32(h + SF_PACK_OFF_LIBRARY, info->library_version);
  memcpy(h + 20, info->library, strnlen(info->library, 15));
  memcpy(h + SF_PACK_OFF_ISA, info->isa, strnlen(info->isa, SF_PACK_ISA_BYTES - 1));
  put32(h + SF_PACK_OFF_MR, info->mr);
  put32(h + SF_PACK_OFF_NR, info->nr);
  put32(h + SF_PACK_OFF_POLICY, info->weight_policy);
  put32(h + SF_PACK_OFF_WEIGHT_TYPE, info->weight_type);
  put32(h + SF_PACK_OFF_NETWORKS, info->networks);
  put32(h + SF_PACK_OFF_COUNT, count);
  put64(h + SF_PACK_OFF_INDEX, index_offset);
  put64(h + SF_PACK_OFF_FILE_BYTES, file_bytes);
  memcpy(h + SF_PACK_OFF_CONFIGS, info->config_sha256, sizeof info->config_sha256);
  put32(h + SF_PACK_OFF_INDEX_CRC, index_crc);
  put32(h + SF_PACK_OFF_HEADER_CRC, crc_of(h, SF_PACK_OFF_HEADER_CRC));
}

static uint64_t align_up(uint64_t x) { return (x + SF_PACK_ALIGN - 1) / SF_PACK_ALIGN * SF_PACK_ALIGN; }

static int write_zeros(FILE *f, size_t n) {
  static const unsigned char zeros[SF_PACK_ALIGN];
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    if (fwrite(zeros, 1, k, f) != k) return 0;
    n -= k;
  }
  return 1;
}

sf_status sf_pack_write(const char *path, const sf_pack_info *info, const sf_pack_blob *blobs, size_t n, sf_diag *d) {
  if (path == NULL || info == NULL || (blobs == NULL && n > 0))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "pack: NULL argument");
  if (n > UINT32_MAX / 2 || n > (SIZE_MAX - SF_PACK_HEADER_BYTES) / SF_PACK_ENTRY_BYTES)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: %zu blobs are too many for a pack", path, n);
  if (n == 0) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: nothing to pack", path);
  if (info->nr == 0) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: no panel width", path);
  size_t isa_len = 0;
  while (isa_len < SF_PACK_ISA_BYTES && info->isa[isa_len] != '\0') isa_len++;
  if (isa_len == 0 || isa_len >= SF_PACK_ISA_BYTES)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: bad panel layout name", path);
  /* Offsets: blobs in the order given after the index. */
  const uint64_t index_bytes = (uint64_t)n * SF_PACK_ENTRY_BYTES;
  uint64_t at = align_up(SF_PACK_HEADER_BYTES + index_bytes);
  sf_pack_blob *out = malloc((n ? n : 1) * sizeof *out);
  const sf_pack_blob **sorted = malloc((n ? n : 1) * sizeof *sorted);
  unsigned char *index = malloc(n ? (size_t)index_bytes : 1);
  if (out == NULL || sorted == NULL || index == NULL) {
    free(out);
    free(sorted);
    free(index);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
  }
  sf_status s = SF_OK;
  for (size_t i = 0; i < n && s == SF_OK; i++) {
    out[i] = blobs[i];
    sorted[i] = &out[i];
    const char *why = NULL;
    if (!name_ok(out[i].name, NULL)) why = "its name is empty, too long or not printable ASCII";
    else if ((why = blob_fields_problem(&out[i], info->networks)) == NULL && out[i].size > 0 &&
             out[i].data == NULL)
      why = "no data";
    if (why != NULL) {
      s = sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: blob %zu ('%.*s'): %s", path, i, SF_PACK_NAME_BYTES - 1,
                      out[i].name, why);
      break;
    }
    if (at > UINT64_MAX - out[i].size - SF_PACK_ALIGN) {
      s = sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: the blobs overflow a file", path);
      break;
    }
    out[i].offset = at;
    at = align_up(at + out[i].size);
  }
  if (s == SF_OK && n > 1) {
    qsort(sorted, n, sizeof *sorted, cmp_by_name);
    for (size_t i = 1; i < n && s == SF_OK; i++)
      if (cmp_by_name(&sorted[i - 1], &sorted[i]) == 0)
        s = sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: two blobs named '%s' in network %u", path, sorted[i]->name,
                        (unsigned)sorted[i]->network);
  }
  /* The last blob's end is the file's end. */
  uint64_t file_bytes = align_up(SF_PACK_HEADER_BYTES + index_bytes);
  if (n > 0) file_bytes = out[n - 1].offset + out[n - 1].size;
  size_t plen = strlen(path);
  char *tmp = s == SF_OK ? malloc(plen + sizeof ".partial") : NULL;
  if (s == SF_OK && tmp == NULL) s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
  FILE *f = NULL;
  if (s == SF_OK) {
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".partial", sizeof ".partial");
    f = fopen(tmp, "wb");
    if (f == NULL) s = sf_diag_set(d, SF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  }
  /* Payload first (its CRCs go into the index), then the header and the index. */
  if (s == SF_OK && fseeko(f, (off_t)align_up(SF_PACK_HEADER_BYTES + index_bytes), SEEK_SET) != 0)
    s = sf_diag_set(d, SF_ERR_IO, "%s: seek failed: %s", tmp, strerror(errno));
  uint64_t pos = align_up(SF_PACK_HEADER_BYTES + index_bytes);
  for (size_t i = 0; i < n && s == SF_OK; i++) {
    if (!write_zeros(f, (size_t)(out[i].offset - pos))) {
      s = sf_diag_set(d, SF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
      break;
    }
    const unsigned char *p = out[i].data;
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < out[i].size;) {
      size_t k = out[i].size - done < ((uint64_t)8 << 20) ? (size_t)(out[i].size - done) : ((size_t)8 << 20);
      crc = crc_update(crc, p + done, k);
      if (fwrite(p + done, 1, k, f) != k) {
        s = sf_diag_set(d, SF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        break;
      }
      done += k;
    }
    out[i].crc = crc;
    pos = out[i].offset + out[i].size;
  }
  if (s == SF_OK) {
    for (size_t i = 0; i < n; i++) encode_entry(index + i * SF_PACK_ENTRY_BYTES, &out[i]);
    unsigned char header[SF_PACK_HEADER_BYTES];
    encode_header(header, info, (uint32_t)n, SF_PACK_HEADER_BYTES, file_bytes, crc_of(index, (size_t)index_bytes));
    if (fseeko(f, 0, SEEK_SET) != 0 || fwrite(header, 1, sizeof header, f) != sizeof header ||
        (n > 0 && fwrite(index, 1, (size_t)index_bytes, f) != (size_t)index_bytes) ||
        !write_zeros(f, (size_t)(align_up(SF_PACK_HEADER_BYTES + index_bytes) - SF_PACK_HEADER_BYTES - index_bytes)))
      s = sf_diag_set(d, SF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  }
  if (f != NULL && fclose(f) != 0 && s == SF_OK) s = sf_diag_set(d, SF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  if (s == SF_OK && rename(tmp, path) != 0)
    s = sf_diag_set(d, SF_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
  if (s != SF_OK && f != NULL) remove(tmp);
  free(tmp);
  free(out);
  free(sorted);
  free(index);
  return s;
}

/* ---- reading ---- */

void sf_pack_close(sf_pack *pk) {
  if (pk == NULL) return;
  sf_vfs_unmap(&pk->map);
  free(pk->blobs);
  free(pk->by_name);
  free(pk->label);
  free(pk);
}

/* A NUL-terminated, NUL-padded printable string in a field of cap bytes (may be empty when
 * allow_empty). */
static int field_string_ok(const unsigned char *p, size_t cap, int allow_empty) {
  size_t n = 0;
  while (n < cap && p[n] != 0) {
    if (p[n] < 0x20 || p[n] >= 0x7f) return 0;
    n++;
  }
  if (n == cap || (n == 0 && !allow_empty)) return 0;
  for (size_t i = n; i < cap; i++)
    if (p[i] != 0) return 0;
  return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return 0;
  return 1;
}

#define BAD(...) (sf_diag_set(d, SF_ERR_BAD_MODEL, __VA_ARGS__), NULL)

static sf_pack *parse(sf_pack *pk, sf_diag *d) {
  const unsigned char *p = pk->base;
  const size_t size = pk->size;
  const char *L = pk->label;
  if (size < 8 || memcmp(p, SF_PACK_MAGIC, 8) != 0) return BAD("%s: not a snapfusion pack file (no SFPACK magic)", L);
  if (size < 16) return BAD("%s: truncated: %zu bytes, a pack header takes %d", L, size, SF_PACK_HEADER_BYTES);
  /* What every format version keeps: the header's size at 12 and its CRC in its last 4 bytes, so a
   * damaged header is told from a newer format before the version is believed. */
  const uint32_t header_bytes = get32(p + 12);
  if (header_bytes < 64 || header_bytes > 65536 || header_bytes % 4 != 0)
    return BAD("%s: header size %u is not a pack header's", L, (unsigned)header_bytes);
  if (size < header_bytes) return BAD("%s: truncated: %zu bytes, its header takes %u", L, size, (unsigned)header_bytes);
  const uint32_t hcrc = crc_of(p, header_bytes - 4);
  if (hcrc != get32(p + header_bytes - 4))
    return BAD("%s: header checksum mismatch (stored %08x, computed %08x): the file is damaged", L,
               (unsigned)get32(p + header_bytes - 4), (unsigned)hcrc);
  const uint32_t version = get32(p + SF_PACK_OFF_VERSION);
  if (version != SF_PACK_VERSION) {
    sf_diag_set(d, SF_ERR_UNSUPPORTED, "%s: pack format version %u; this library (%s) reads version %d: pack the model "
                "again with it", L, (unsigned)version, SF_VERSION_STRING, SF_PACK_VERSION);
    return NULL;
  }
  if (header_bytes != SF_PACK_HEADER_BYTES)
    return BAD("%s: header size %u, version %d headers take %d bytes", L, (unsigned)header_bytes, SF_PACK_VERSION,
               SF_PACK_HEADER_BYTES);
  sf_pack_info *in = &pk->info;
  in->version = version;
  in->library_version = get32(p + SF_PACK_OFF_LIBRARY);
  if (!field_string_ok(p + 20, 16, 0)) return BAD("%s: header: the library version is not a string", L);
  memcpy(in->library, p + 20, 16);
  if (get32(p + 36) != 0) return BAD("%s: header: unknown flags %08x", L, (unsigned)get32(p + 36));
  if (!field_string_ok(p + SF_PACK_OFF_ISA, SF_PACK_ISA_BYTES, 0))
    return BAD("%s: header: the panel layout name is not a string", L);
  memcpy(in->isa, p + SF_PACK_OFF_ISA, SF_PACK_ISA_BYTES);
  in->mr = get32(p + SF_PACK_OFF_MR);
  in->nr = get32(p + SF_PACK_OFF_NR);
  if (in->mr < 1 || in->mr > 64 || in->nr < 1 || in->nr > 256)
    return BAD("%s: header: tile %u x %u is out of range", L, (unsigned)in->mr, (unsigned)in->nr);
  in->weight_policy = get32(p + SF_PACK_OFF_POLICY);
  in->weight_type = get32(p + SF_PACK_OFF_WEIGHT_TYPE);
  if (in->weight_policy > 3 || in->weight_type < 1 || in->weight_type > 3)
    return BAD("%s: header: weight type %u / %u is not a sf_weight_type", L, (unsigned)in->weight_policy,
               (unsigned)in->weight_type);
  in->networks = get32(p + SF_PACK_OFF_NETWORKS);
  if (in->networks == 0 || (in->networks & ~15u) != 0)
    return BAD("%s: header: networks %08x are not text encoder, UNet and VAE bits", L, (unsigned)in->networks);
  memcpy(in->config_sha256, p + SF_PACK_OFF_CONFIGS, sizeof in->config_sha256);
  if (!all_zero(p + 212, SF_PACK_OFF_HEADER_CRC - 212)) return BAD("%s: header: reserved bytes are not zero", L);
  in->file_bytes = get64(p + SF_PACK_OFF_FILE_BYTES);
  if (in->file_bytes != (uint64_t)size)
    return BAD("%s: %s: the header says %llu bytes, the file has %zu", L,
               in->file_bytes > size ? "truncated" : "has extra bytes", (unsigned long long)in->file_bytes, size);

  /* The index. */
  const uint32_t count = get32(p + SF_PACK_OFF_COUNT);
  const uint64_t index_offset = get64(p + SF_PACK_OFF_INDEX);
  if (index_offset != SF_PACK_HEADER_BYTES)
    return BAD("%s: header: the index is at %llu, not right after the header", L, (unsigned long long)index_offset);
  if (count == 0) return BAD("%s: header: no blobs", L);
  if ((uint64_t)count > (size - SF_PACK_HEADER_BYTES) / SF_PACK_ENTRY_BYTES)
    return BAD("%s: header: %u blobs do not fit in the file (%zu bytes)", L, (unsigned)count, size);
  const size_t index_bytes = (size_t)count * SF_PACK_ENTRY_BYTES;
  const unsigned char *ix = p + SF_PACK_HEADER_BYTES;
  const uint32_t icrc = crc_of(ix, index_bytes);
  if (icrc != get32(p + SF_PACK_OFF_INDEX_CRC))
    return BAD("%s: index checksum mismatch (stored %08x, computed %08x): the file is damaged", L,
               (unsigned)get32(p + SF_PACK_OFF_INDEX_CRC), (unsigned)icrc);
  const uint64_t data_start = SF_PACK_HEADER_BYTES + (uint64_t)index_bytes;

  pk->blobs = calloc(count, sizeof *pk->blobs);
  pk->by_name = malloc(count * sizeof *pk->by_name);
  const sf_pack_blob **by_offset = malloc(count * sizeof *by_offset);
  if (pk->blobs == NULL || pk->by_name == NULL || by_offset == NULL) {
    free(by_offset);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory for %u blobs", L, (unsigned)count);
    return NULL;
  }
  pk->n = count;
  for (int i = 0; i < 4; i++) {
    pk->range_lo[i] = UINT64_MAX;
    pk->range_hi[i] = 0;
  }
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = ix + (size_t)i * SF_PACK_ENTRY_BYTES;
    sf_pack_blob *b = &pk->blobs[i];
    if (!field_string_ok(e, SF_PACK_NAME_BYTES, 0) || !name_ok((const char *)e, NULL)) {
      free(by_offset);
      return BAD("%s: blob %u: its name is empty, unterminated, not NUL-padded or not printable ASCII", L,
                 (unsigned)i);
    }
    memcpy(b->name, e, SF_PACK_NAME_BYTES);
    b->network = get32(e + SF_PACK_E_NETWORK);
    b->kind = get32(e + SF_PACK_E_KIND);
    b->dtype = get32(e + SF_PACK_E_DTYPE);
    b->ndim = get32(e + SF_PACK_E_NDIM);
    for (int k = 0; k < SF_PACK_MAX_DIMS; k++) b->shape[k] = get64(e + SF_PACK_E_SHAPE + 8 * k);
    b->param = get64(e + SF_PACK_E_PARAM);
    b->offset = get64(e + SF_PACK_E_OFFSET);
    b->size = get64(e + SF_PACK_E_SIZE);
    b->crc = get32(e + SF_PACK_E_CRC);
    const char *why = blob_fields_problem(b, in->networks);
    if (why == NULL && !all_zero(e + SF_PACK_E_CRC + 4, SF_PACK_ENTRY_BYTES - SF_PACK_E_CRC - 4))
      why = "reserved bytes are not zero";
    if (why == NULL && b->offset % SF_PACK_ALIGN != 0) why = "its offset is not 64-byte aligned";
    if (why == NULL && (b->offset < data_start || b->offset > (uint64_t)size || b->size > (uint64_t)size - b->offset))
      why = "it lies outside the file's payload";
    if (why != NULL) {
      free(by_offset);
      return BAD("%s: blob %u ('%s'): %s", L, (unsigned)i, b->name, why);
    }
    b->data = p + b->offset;
    pk->by_name[i] = b;
    by_offset[i] = b;
    const int ni = net_bit_index(b->network);
    if (b->offset < pk->range_lo[ni]) pk->range_lo[ni] = b->offset;
    if (b->offset + b->size > pk->range_hi[ni]) pk->range_hi[ni] = b->offset + b->size;
  }
  qsort(by_offset, count, sizeof *by_offset, cmp_by_offset);
  for (uint32_t i = 1; i < count; i++)
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->size) {
      const char *a = by_offset[i - 1]->name, *b = by_offset[i]->name;
      free(by_offset);
      return BAD("%s: blobs '%s' and '%s' overlap", L, a, b);
    }
  free(by_offset);
  qsort(pk->by_name, count, sizeof *pk->by_name, cmp_by_name);
  for (uint32_t i = 1; i < count; i++)
    if (cmp_by_name(&pk->by_name[i - 1], &pk->by_name[i]) == 0)
      return BAD("%s: two blobs named '%s' in network %u", L, pk->by_name[i]->name, (unsigned)pk->by_name[i]->network);
  return pk;
}

static sf_pack *pack_new(const char *label, sf_diag *d) {
  sf_pack *pk = calloc(1, sizeof *pk);
  if (pk == NULL || (pk->label = strdup(label ? label : "pack")) == NULL) {
    free(pk);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", label ? label : "pack");
    return NULL;
  }
  return pk;
}

sf_pack *sf_pack_open_memory(const void *data, size_t size, const char *label, sf_diag *d) {
  if (data == NULL && size > 0) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "pack: NULL data");
    return NULL;
  }
  sf_pack *pk = pack_new(label, d);
  if (pk == NULL) return NULL;
  static const unsigned char empty[1];
  pk->base = data ? data : empty;
  pk->size = size;
  if (parse(pk, d) == NULL) {
    sf_pack_close(pk);
    return NULL;
  }
  return pk;
}

sf_pack *sf_pack_open(const char *path, sf_diag *d) {
  if (path == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "pack: NULL path");
    return NULL;
  }
  sf_pack *pk = pack_new(path, d);
  if (pk == NULL) return NULL;
  int err = 0;
  switch (sf_vfs_map_file(sf_vfs_os(), path, &pk->map, &err)) {
    case SF_VFS_MAPPED: break;
    case SF_VFS_MAP_OPEN_FAILED:
      sf_diag_set(d, SF_ERR_IO, "%s: cannot open pack file: %s", path, strerror(err));
      sf_pack_close(pk);
      return NULL;
    case SF_VFS_MAP_NOT_REGULAR:
      sf_diag_set(d, SF_ERR_IO, "%s: not a regular file", path);
      sf_pack_close(pk);
      return NULL;
    case SF_VFS_MAP_TOO_LARGE:
      sf_diag_set(d, SF_ERR_IO, "%s: too large to map", path);
      sf_pack_close(pk);
      return NULL;
    case SF_VFS_MAP_FAILED:
      sf_diag_set(d, SF_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, pk->map.size, strerror(err));
      pk->map.size = 0;
      sf_pack_close(pk);
      return NULL;
  }
  static const unsigned char empty[1];
  pk->base = pk->map.data ? pk->map.data : empty;
  pk->size = pk->map.size;
  if (parse(pk, d) == NULL) {
    sf_pack_close(pk);
    return NULL;
  }
  return pk;
}

const sf_pack_info *sf_pack_get_info(const sf_pack *pk) { return &pk->info; }
const char *sf_pack_label(const sf_pack *pk) { return pk->label; }
size_t sf_pack_count(const sf_pack *pk) { return pk->n; }
const sf_pack_blob *sf_pack_at(const sf_pack *pk, size_t index) { return index < pk->n ? &pk->blobs[index] : NULL; }
size_t sf_pack_index_of(const sf_pack *pk, const sf_pack_blob *b) { return (size_t)(b - pk->blobs); }

const sf_pack_blob *sf_pack_find(const sf_pack *pk, uint32_t network, const char *name) {
  size_t lo = 0, hi = pk->n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const int c = cmp_key(pk->by_name[mid]->network, pk->by_name[mid]->name, network, name);
    if (c == 0) return pk->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

void sf_pack_drop_pages(const sf_pack *pk, uint32_t networks) {
  if (pk == NULL || pk->map.os_addr == NULL) return;
  for (int i = 0; i < 4; i++) {
    if (!(networks & (1u << i)) || pk->range_lo[i] >= pk->range_hi[i]) continue;
    sf_vfs_map part = pk->map;
    const long ps = sysconf(_SC_PAGESIZE);
    const uint64_t page = ps > 0 ? (uint64_t)ps : 4096, lo = pk->range_lo[i] / page * page, hi = pk->range_hi[i];
    part.os_addr = (char *)pk->map.os_addr + lo;
    part.os_len = (size_t)(hi - lo);
    sf_vfs_drop_pages(&part);
  }
}

sf_status sf_pack_verify(const sf_pack *pk, sf_diag *d) {
  for (size_t i = 0; i < pk->n; i++) {
    const sf_pack_blob *b = &pk->blobs[i];
    const uint32_t crc = crc_of(b->data, (size_t)b->size);
    if (crc != b->crc)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: blob %zu ('%s', network %u) is damaged: CRC-32 %08x, the index says %08x",
                         pk->label, i, b->name, (unsigned)b->network, (unsigned)crc, (unsigned)b->crc);
  }
  return SF_OK;
}
