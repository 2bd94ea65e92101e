/* Pack files from the inside (io/pack.h, graph/wsrc.h, pipeline/pack.h):
 *  - the reader refuses every malformed field of a small pack (header and index entries patched,
 *    checksums fixed so the field itself is what is judged) with a status and a message naming
 *    the field, and reads the good one back exactly; the writer refuses what the format cannot
 *    hold; config hashes ignore formatting and saving tools' keys, not values;
 *  - the panel layout: a tiny-sd pack whose header is patched to AVX-512 panels (checksum fixed)
 *    is refused on a CPU without AVX-512 (with the kernel test hook where the CPU has it), naming
 *    both layouts; a pack of this CPU's own layout is refused when that kernel is declared
 *    unsupported (the hook), and an unknown layout is refused;
 *  - the architecture: blobs missing, left over, swapped (shapes that do not fit) or of another
 *    type are refused when the networks are built, naming the blob;
 *  - per-blob CRCs: sf_pack_verify finds a damaged payload byte (a load does not read it). */
#define _XOPEN_SOURCE 700
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "graph/ops/igemm.h"
#include "io/json.h"
#include "io/pack.h"
#include "snapfusion.h"
#include "test.h"

static char workdir[256];

/* ---- bytes --------------------------------------------------------------------------------- */

typedef struct buf {
  unsigned char *p;
  size_t n;
} buf;

static buf read_file(const char *path) {
  buf b = {0};
  FILE *f = fopen(path, "rb");
  if (f == NULL) return b;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  /* 64-byte aligned, as a mapping is */
  if (n > 0 && posix_memalign((void **)&b.p, 64, (size_t)n) == 0 && fread(b.p, 1, (size_t)n, f) == (size_t)n) b.n = (size_t)n;
  fclose(f);
  return b;
}

static buf copy_of(buf b) {
  buf c = {0};
  if (posix_memalign((void **)&c.p, 64, b.n ? b.n : 1) != 0) abort();
  memcpy(c.p, b.p, b.n);
  c.n = b.n;
  return c;
}

static void write_file(const char *path, buf b) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL && fwrite(b.p, 1, b.n, f) == b.n);
  if (f) fclose(f);
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void set32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void set64(unsigned char *p, uint64_t v) {
  set32(p, (uint32_t)v);
  set32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* Recomputes the index and header CRCs, as a forger would. */
static void fix_crcs(buf b) {
  uint32_t count = get32(b.p + SF_PACK_OFF_COUNT);
  size_t ix = (size_t)count * SF_PACK_ENTRY_BYTES;
  if (SF_PACK_HEADER_BYTES + ix <= b.n)
    set32(b.p + SF_PACK_OFF_INDEX_CRC, (uint32_t)crc32(0L, b.p + SF_PACK_HEADER_BYTES, (uInt)ix));
  set32(b.p + SF_PACK_OFF_HEADER_CRC, (uint32_t)crc32(0L, b.p, SF_PACK_OFF_HEADER_CRC));
}

static unsigned char *entry(buf b, size_t i) { return b.p + SF_PACK_HEADER_BYTES + i * SF_PACK_ENTRY_BYTES; }

/* ---- the format on a small pack ------------------------------------------------------------- */

static float panels[2 * 3 * 16], bias[32];
static uint16_t emb[5 * 4];

static sf_pack_info small_info(void) {
  sf_pack_info in;
  memset(&in, 0, sizeof in);
  in.library_version = 10100;
  snprintf(in.library, sizeof in.library, "1.1.0");
  snprintf(in.isa, sizeof in.isa, "avx2+fma");
  in.mr = 6;
  in.nr = 16;
  in.weight_policy = SF_WEIGHT_F32;
  in.weight_type = SF_WEIGHT_F32;
  in.networks = SF_NET_TEXT_ENCODER | SF_NET_UNET;
  memset(in.config_sha256[1], 0xab, 32);
  return in;
}

static size_t small_blobs(sf_pack_blob *b) {
  memset(b, 0, 3 * sizeof *b);
  for (size_t i = 0; i < sizeof panels / sizeof panels[0]; i++) panels[i] = (float)i * 0.5f;
  for (size_t i = 0; i < 32; i++) bias[i] = i < 20 ? (float)i : 0.0f;
  for (size_t i = 0; i < 20; i++) emb[i] = (uint16_t)(0x3c00 + i);
  snprintf(b[0].name, sizeof b[0].name, "a.weight");
  b[0].network = SF_NET_UNET;
  b[0].kind = SF_PACK_PANELS;
  b[0].dtype = SF_PACK_F32;
  b[0].ndim = 3;
  b[0].shape[0] = 2;
  b[0].shape[1] = 3;
  b[0].shape[2] = 16;
  b[0].param = 20;
  b[0].size = sizeof panels;
  b[0].data = panels;
  snprintf(b[1].name, sizeof b[1].name, "a.bias");
  b[1].network = SF_NET_UNET;
  b[1].kind = SF_PACK_BIAS;
  b[1].dtype = SF_PACK_F32;
  b[1].ndim = 1;
  b[1].shape[0] = 32;
  b[1].size = sizeof bias;
  b[1].data = bias;
  snprintf(b[2].name, sizeof b[2].name, "t.emb");
  b[2].network = SF_NET_TEXT_ENCODER;
  b[2].kind = SF_PACK_TENSOR;
  b[2].dtype = SF_PACK_F16;
  b[2].ndim = 2;
  b[2].shape[0] = 5;
  b[2].shape[1] = 4;
  b[2].size = sizeof emb;
  b[2].data = emb;
  return 3;
}

static buf small_pack(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/small.sfpack", workdir);
  sf_pack_blob b[3];
  size_t n = small_blobs(b);
  sf_pack_info in = small_info();
  sf_diag d = {0};
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  char partial[320];
  snprintf(partial, sizeof partial, "%s.partial", path);
  CHECK(access(partial, F_OK) != 0);
  buf f = read_file(path);
  remove(path);
  return f;
}

static void test_good_small(void) {
  buf f = small_pack();
  CHECK(f.n > 0);
  sf_diag d = {0};
  sf_pack *pk = sf_pack_open_memory(f.p, f.n, "small", &d);
  CHECK_MSG(pk != NULL, "%s", d.msg);
  if (pk == NULL) return;
  const sf_pack_info *in = sf_pack_get_info(pk);
  CHECK(strcmp(in->isa, "avx2+fma") == 0 && in->nr == 16 && in->mr == 6 && in->weight_type == SF_WEIGHT_F32);
  CHECK(strcmp(in->library, "1.1.0") == 0 && in->library_version == 10100 && in->file_bytes == f.n);
  CHECK(in->config_sha256[1][0] == 0xab && in->config_sha256[0][0] == 0);
  CHECK_EQ_INT(sf_pack_count(pk), 3);
  const sf_pack_blob *b = sf_pack_find(pk, SF_NET_UNET, "a.weight");
  CHECK(b != NULL && b->kind == SF_PACK_PANELS && b->param == 20 && b->offset % 64 == 0 &&
        memcmp(b->data, panels, sizeof panels) == 0);
  b = sf_pack_find(pk, SF_NET_TEXT_ENCODER, "t.emb");
  CHECK(b != NULL && b->dtype == SF_PACK_F16 && b->shape[0] == 5 && memcmp(b->data, emb, sizeof emb) == 0);
  CHECK(sf_pack_find(pk, SF_NET_TEXT_ENCODER, "a.weight") == NULL);
  CHECK(sf_pack_find(pk, SF_NET_UNET, "a.weigh") == NULL);
  CHECK_EQ_INT(sf_pack_verify(pk, &d), SF_OK);
  sf_pack_close(pk);
  /* a damaged payload byte: the load does not see it, verification does */
  f.p[f.n - 1] ^= 1;
  pk = sf_pack_open_memory(f.p, f.n, "small", &d);
  CHECK(pk != NULL);
  if (pk) {
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_pack_verify(pk, &d), SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(d.msg, "t.emb") != NULL && strstr(d.msg, "damaged") != NULL, "%s", d.msg);
  }
  sf_pack_close(pk);
  free(f.p);
}

/* A patch of the small pack: apply() edits a copy, the CRCs are fixed unless keep_crc, and the
 * reader must refuse it with status and a message containing needle. */
typedef struct patch {
  const char *what;
  void (*apply)(buf b);
  sf_status status;
  const char *needle;
  int keep_crc;
} patch;

#define H(off) (b.p + (off))
#define E(i, off) (entry(b, i) + (off))
static void p_version(buf b) { set32(H(SF_PACK_OFF_VERSION), 2); }
static void p_hsize(buf b) { set32(H(12), 7); }
static void p_hsize_big(buf b) { set32(H(12), 1u << 20); }
static void p_flags(buf b) { set32(H(36), 1); }
static void p_lib(buf b) { memset(H(20), 'x', 16); }
static void p_isa_unterminated(buf b) { memset(H(SF_PACK_OFF_ISA), 'a', SF_PACK_ISA_BYTES); }
static void p_isa_control(buf b) { H(SF_PACK_OFF_ISA)[1] = 1; }
static void p_isa_empty(buf b) { memset(H(SF_PACK_OFF_ISA), 0, SF_PACK_ISA_BYTES); }
static void p_mr(buf b) { set32(H(SF_PACK_OFF_MR), 0); }
static void p_nr(buf b) { set32(H(SF_PACK_OFF_NR), 100000); }
static void p_policy(buf b) { set32(H(SF_PACK_OFF_POLICY), 4); }
static void p_wtype(buf b) { set32(H(SF_PACK_OFF_WEIGHT_TYPE), 0); }
static void p_nets0(buf b) { set32(H(SF_PACK_OFF_NETWORKS), 0); }
static void p_nets16(buf b) { set32(H(SF_PACK_OFF_NETWORKS), 16 | 2); }
static void p_reserved(buf b) { H(300)[0] = 1; }
static void p_fbytes_more(buf b) { set64(H(SF_PACK_OFF_FILE_BYTES), get64(H(SF_PACK_OFF_FILE_BYTES)) + 1); }
static void p_fbytes_less(buf b) { set64(H(SF_PACK_OFF_FILE_BYTES), get64(H(SF_PACK_OFF_FILE_BYTES)) - 1); }
static void p_index_at(buf b) { set64(H(SF_PACK_OFF_INDEX), 1024); }
static void p_count0(buf b) { set32(H(SF_PACK_OFF_COUNT), 0); }
static void p_count_huge(buf b) { set32(H(SF_PACK_OFF_COUNT), 0xffffffffu); }
static void p_count_more(buf b) { set32(H(SF_PACK_OFF_COUNT), 4); } /* entry 3 is payload */
static void p_header_flip(buf b) { H(50)[0] ^= 4; }
static void p_index_flip(buf b) { E(1, 10)[0] ^= 4; }
static void p_name_full(buf b) { memset(E(0, 0), 'x', SF_PACK_NAME_BYTES); }
static void p_name_empty(buf b) { memset(E(0, 0), 0, SF_PACK_NAME_BYTES); }
static void p_name_control(buf b) { E(0, 1)[0] = 1; }
static void p_name_space(buf b) { E(0, 1)[0] = ' '; }
static void p_name_padding(buf b) { E(0, 20)[0] = 'z'; }
static void p_net_two(buf b) { set32(E(0, SF_PACK_E_NETWORK), 3); }
static void p_net_16(buf b) { set32(E(0, SF_PACK_E_NETWORK), 16); }
static void p_net_absent(buf b) { set32(E(0, SF_PACK_E_NETWORK), SF_NET_VAE_DECODER); }
static void p_kind0(buf b) { set32(E(0, SF_PACK_E_KIND), 0); }
static void p_kind5(buf b) { set32(E(0, SF_PACK_E_KIND), 5); }
static void p_dtype(buf b) { set32(E(0, SF_PACK_E_DTYPE), 3); }
static void p_ndim0(buf b) { set32(E(2, SF_PACK_E_NDIM), 0); }
static void p_ndim5(buf b) { set32(E(2, SF_PACK_E_NDIM), 5); }
static void p_dim0(buf b) { set64(E(2, SF_PACK_E_SHAPE + 8), 0); }
static void p_dim_past(buf b) { set64(E(2, SF_PACK_E_SHAPE + 16), 1); }
static void p_dim_overflow(buf b) {
  set64(E(0, SF_PACK_E_SHAPE), (uint64_t)1 << 40);
  set64(E(0, SF_PACK_E_SHAPE + 8), (uint64_t)1 << 40);
}
static void p_size(buf b) { set64(E(0, SF_PACK_E_SIZE), get64(E(0, SF_PACK_E_SIZE)) + 4); }
static void p_param0(buf b) { set64(E(0, SF_PACK_E_PARAM), 0); }
static void p_param_over(buf b) { set64(E(0, SF_PACK_E_PARAM), 33); }
static void p_param_under(buf b) { set64(E(0, SF_PACK_E_PARAM), 16); }
static void p_panels_2d(buf b) {
  set32(E(0, SF_PACK_E_NDIM), 2);
  set64(E(0, SF_PACK_E_SHAPE + 8), 48);
  set64(E(0, SF_PACK_E_SHAPE + 16), 0);
}
static void p_bias_f16(buf b) {
  set32(E(1, SF_PACK_E_DTYPE), SF_PACK_F16);
  set64(E(1, SF_PACK_E_SHAPE), 64);
}
static void p_tensor_i8(buf b) {
  set32(E(2, SF_PACK_E_DTYPE), SF_PACK_I8);
  set64(E(2, SF_PACK_E_SHAPE + 8), 8);
}
static void p_tensor_param(buf b) { set64(E(2, SF_PACK_E_PARAM), 5); }
static void p_unaligned(buf b) { set64(E(0, SF_PACK_E_OFFSET), get64(E(0, SF_PACK_E_OFFSET)) + 4); }
static void p_in_header(buf b) { set64(E(0, SF_PACK_E_OFFSET), 0); }
static void p_beyond(buf b) { set64(E(2, SF_PACK_E_OFFSET), (b.n + 63) / 64 * 64); }
static void p_offset_wrap(buf b) { set64(E(2, SF_PACK_E_OFFSET), UINT64_MAX - 63); }
static void p_size_wrap(buf b) { /* a consistent shape whose bytes reach past 2^64 from the offset */
  set32(E(2, SF_PACK_E_NDIM), 1);
  set32(E(2, SF_PACK_E_DTYPE), SF_PACK_F32);
  set64(E(2, SF_PACK_E_SHAPE), (uint64_t)1 << 61);
  set64(E(2, SF_PACK_E_SHAPE + 8), 0);
  set64(E(2, SF_PACK_E_SIZE), (uint64_t)1 << 63);
}
static void p_overlap(buf b) { set64(E(1, SF_PACK_E_OFFSET), get64(E(0, SF_PACK_E_OFFSET)) + 64); }
static void p_duplicate(buf b) { memcpy(E(1, 0), "a.weight\0", 9); }
static void p_entry_reserved(buf b) { E(1, 250)[0] = 9; }
#undef H
#undef E

static void test_malformed_small(void) {
  const patch cases[] = {
      {"version", p_version, SF_ERR_UNSUPPORTED, "version 2", 0},
      {"header size", p_hsize, SF_ERR_BAD_MODEL, "header size", 0},
      {"header size big", p_hsize_big, SF_ERR_BAD_MODEL, "header size", 0},
      {"flags", p_flags, SF_ERR_BAD_MODEL, "flags", 0},
      {"library", p_lib, SF_ERR_BAD_MODEL, "library version", 0},
      {"isa unterminated", p_isa_unterminated, SF_ERR_BAD_MODEL, "layout name", 0},
      {"isa control", p_isa_control, SF_ERR_BAD_MODEL, "layout name", 0},
      {"isa empty", p_isa_empty, SF_ERR_BAD_MODEL, "layout name", 0},
      {"mr", p_mr, SF_ERR_BAD_MODEL, "tile", 0},
      {"nr", p_nr, SF_ERR_BAD_MODEL, "tile", 0},
      {"policy", p_policy, SF_ERR_BAD_MODEL, "weight type", 0},
      {"weight type", p_wtype, SF_ERR_BAD_MODEL, "weight type", 0},
      {"networks 0", p_nets0, SF_ERR_BAD_MODEL, "networks", 0},
      {"networks 16", p_nets16, SF_ERR_BAD_MODEL, "networks", 0},
      {"reserved", p_reserved, SF_ERR_BAD_MODEL, "reserved", 0},
      {"file bytes more", p_fbytes_more, SF_ERR_BAD_MODEL, "truncated", 0},
      {"file bytes less", p_fbytes_less, SF_ERR_BAD_MODEL, "extra bytes", 0},
      {"index offset", p_index_at, SF_ERR_BAD_MODEL, "index", 0},
      {"no blobs", p_count0, SF_ERR_BAD_MODEL, "no blobs", 0},
      {"count huge", p_count_huge, SF_ERR_BAD_MODEL, "do not fit", 0},
      {"count into payload", p_count_more, SF_ERR_BAD_MODEL, "outside the file's payload", 0},
      {"header flip", p_header_flip, SF_ERR_BAD_MODEL, "header checksum", 1},
      {"index flip", p_index_flip, SF_ERR_BAD_MODEL, "index checksum", 1},
      {"name unterminated", p_name_full, SF_ERR_BAD_MODEL, "name", 0},
      {"name empty", p_name_empty, SF_ERR_BAD_MODEL, "name", 0},
      {"name control", p_name_control, SF_ERR_BAD_MODEL, "name", 0},
      {"name space", p_name_space, SF_ERR_BAD_MODEL, "name", 0},
      {"name padding", p_name_padding, SF_ERR_BAD_MODEL, "name", 0},
      {"network bits", p_net_two, SF_ERR_BAD_MODEL, "sf_network bit", 0},
      {"network 16", p_net_16, SF_ERR_BAD_MODEL, "sf_network bit", 0},
      {"network absent", p_net_absent, SF_ERR_BAD_MODEL, "header's networks", 0},
      {"kind 0", p_kind0, SF_ERR_BAD_MODEL, "kind", 0},
      {"kind 5", p_kind5, SF_ERR_BAD_MODEL, "kind", 0},
      {"dtype", p_dtype, SF_ERR_BAD_MODEL, "dtype", 0},
      {"ndim 0", p_ndim0, SF_ERR_BAD_MODEL, "ndim", 0},
      {"ndim 5", p_ndim5, SF_ERR_BAD_MODEL, "ndim", 0},
      {"dim 0", p_dim0, SF_ERR_BAD_MODEL, "is 0", 0},
      {"dim past ndim", p_dim_past, SF_ERR_BAD_MODEL, "past ndim", 0},
      {"shape overflow", p_dim_overflow, SF_ERR_BAD_MODEL, "overflows", 0},
      {"size", p_size, SF_ERR_BAD_MODEL, "size", 0},
      {"panels param 0", p_param0, SF_ERR_BAD_MODEL, "output channels", 0},
      {"panels param over", p_param_over, SF_ERR_BAD_MODEL, "output channels", 0},
      {"panels param under", p_param_under, SF_ERR_BAD_MODEL, "output channels", 0},
      {"panels 2d", p_panels_2d, SF_ERR_BAD_MODEL, "panels", 0},
      {"bias f16", p_bias_f16, SF_ERR_BAD_MODEL, "f32 vector", 0},
      {"tensor i8", p_tensor_i8, SF_ERR_BAD_MODEL, "i8", 0},
      {"tensor param", p_tensor_param, SF_ERR_BAD_MODEL, "param", 0},
      {"unaligned", p_unaligned, SF_ERR_BAD_MODEL, "aligned", 0},
      {"offset in header", p_in_header, SF_ERR_BAD_MODEL, "outside", 0},
      {"offset beyond", p_beyond, SF_ERR_BAD_MODEL, "outside", 0},
      {"offset wraps", p_offset_wrap, SF_ERR_BAD_MODEL, "outside", 0},
      {"size wraps", p_size_wrap, SF_ERR_BAD_MODEL, "outside", 0},
      {"overlap", p_overlap, SF_ERR_BAD_MODEL, "overlap", 0},
      {"duplicate", p_duplicate, SF_ERR_BAD_MODEL, "two blobs named 'a.weight'", 0},
      {"entry reserved", p_entry_reserved, SF_ERR_BAD_MODEL, "reserved", 0},
  };
  buf good = small_pack();
  if (good.n == 0) return;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    buf b = copy_of(good);
    cases[i].apply(b);
    if (!cases[i].keep_crc) fix_crcs(b);
    sf_diag d = {0};
    sf_pack *pk = sf_pack_open_memory(b.p, b.n, "hostile.sfpack", &d);
    CHECK_MSG(pk == NULL, "%s: accepted", cases[i].what);
    sf_pack_close(pk);
    CHECK_MSG(d.status == cases[i].status, "%s: status %d (%s)", cases[i].what, (int)d.status, d.msg);
    CHECK_MSG(strstr(d.msg, "hostile.sfpack") != NULL, "%s: '%s' does not name the file", cases[i].what, d.msg);
    CHECK_MSG(strstr(d.msg, cases[i].needle) != NULL, "%s: '%s' lacks '%s'", cases[i].what, d.msg, cases[i].needle);
    free(b.p);
  }
  /* every prefix of the file, and a NULL / empty buffer */
  for (size_t n = 0; n < good.n; n++) {
    sf_diag d = {0};
    sf_pack *pk = sf_pack_open_memory(good.p, n, "cut", &d);
    CHECK_MSG(pk == NULL && d.status == SF_ERR_BAD_MODEL, "cut at %zu: %d %s", n, (int)d.status, d.msg);
    sf_pack_close(pk);
  }
  sf_diag d = {0};
  CHECK(sf_pack_open_memory(NULL, 0, "empty", &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  free(good.p);
}

static void test_writer_refusals(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/refused.sfpack", workdir);
  sf_pack_blob b[3];
  sf_pack_info in = small_info();
  struct {
    const char *what, *needle;
    int which;
  } cases[] = {{"long name", "name", 0}, {"no data", "no data", 1}, {"bad dims", "size", 2},
               {"duplicate", "two blobs", 3}, {"nothing", "nothing to pack", 4}, {"network", "network", 5}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = small_blobs(b);
    switch (cases[i].which) {
      case 0: memset(b[0].name, 'x', sizeof b[0].name); break;
      case 1: b[1].data = NULL; break;
      case 2: b[2].shape[1] = 5; break;
      case 3: snprintf(b[1].name, sizeof b[1].name, "a.weight"); break;
      case 4: n = 0; break;
      case 5: b[2].network = SF_NET_VAE_DECODER; break;
    }
    sf_diag d = {0};
    CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_ERR_INVALID_ARGUMENT, "%s: %s", cases[i].what, d.msg);
    CHECK_MSG(strstr(d.msg, cases[i].needle) != NULL, "%s: '%s' lacks '%s'", cases[i].what, d.msg, cases[i].needle);
    CHECK(access(path, F_OK) != 0);
  }
  size_t n = small_blobs(b);
  sf_diag d = {0};
  char bad[400];
  snprintf(bad, sizeof bad, "%s/missing-dir/x.sfpack", workdir);
  CHECK_EQ_INT(sf_pack_write(bad, &in, b, n, &d), SF_ERR_IO);
  CHECK(strstr(d.msg, "missing-dir") != NULL);
}

static void test_config_hash(void) {
  const char *texts[] = {
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":4,\"block_out_channels\":[32,64]}",
      /* formatting and a saving tool's keys do not count */
      ("{ \"_class_name\" : \"UNet2DConditionModel\",\n  \"_diffusers_version\": \"0.30.3\", \"in_channels\": 4,\n"
       "  \"block_out_channels\": [ 32, 64 ], \"_name_or_path\": \"/home/x\" }"),
      /* values, keys, the class and order do */
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":9,\"block_out_channels\":[32,64]}",
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":4,\"block_out_channels\":[32,64],\"x\":null}",
      "{\"_class_name\":\"Other\",\"in_channels\":4,\"block_out_channels\":[32,64]}",
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":4,\"block_out_channels\":[64,32]}",
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":4,\"block_out_channels\":[32,64],\"n\":{\"_a\":1}}",
      "{\"_class_name\":\"UNet2DConditionModel\",\"in_channels\":4,\"block_out_channels\":[32,64],\"n\":{\"_a\":2}}",
  };
  uint8_t h[8][32];
  for (int i = 0; i < 8; i++) {
    sf_diag d = {0};
    sf_json_doc *doc = sf_json_parse(texts[i], strlen(texts[i]), &d);
    CHECK_MSG(doc != NULL, "%s", d.msg);
    sf_pack_config_hash(doc ? sf_json_root(doc) : NULL, h[i]);
    sf_json_free(doc);
  }
  CHECK(memcmp(h[0], h[1], 32) == 0);
  for (int i = 2; i < 8; i++) CHECK_MSG(memcmp(h[0], h[i], 32) != 0, "config %d hashes like config 0", i);
  CHECK(memcmp(h[6], h[7], 32) != 0); /* underscored keys count below the top level */
}

/* ---- a real pack: layouts and architectures ----------------------------------------------------- */

static sf_context *ctx;
static char *model;

static sf_status load_pack(const char *path, sf_pipeline **out) {
  sf_params *p = NULL;
  sf_params_create(&p);
  sf_params_set_string(p, SF_PARAM_PACK_PATH, path);
  sf_status s = sf_pipeline_load(ctx, model, p, out);
  sf_params_destroy(p);
  return s;
}

static void expect_refused(const char *path, sf_status want, const char *n1, const char *n2, const char *what) {
  sf_pipeline *p = NULL;
  sf_status s = load_pack(path, &p);
  const char *msg = sf_last_error();
  if (getenv("SF_TEST_SHOW")) printf("%s: %s\n", what, msg);
  CHECK_MSG(s == want && p == NULL, "%s: status %d, expected %d: %s", what, (int)s, (int)want, msg);
  CHECK_MSG(n1 == NULL || strstr(msg, n1) != NULL, "%s: '%s' lacks '%s'", what, msg, n1);
  CHECK_MSG(n2 == NULL || strstr(msg, n2) != NULL, "%s: '%s' lacks '%s'", what, msg, n2);
  sf_pipeline_destroy(p);
}

/* The blobs of pk as writer input (pointing into pk's bytes), editable. */
static sf_pack_blob *blobs_of(const sf_pack *pk, size_t *n) {
  *n = sf_pack_count(pk);
  sf_pack_blob *b = calloc(*n + 1, sizeof *b);
  for (size_t i = 0; i < *n; i++) b[i] = *sf_pack_at(pk, i);
  return b;
}

static size_t index_of(const sf_pack_blob *b, size_t n, uint32_t net, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (b[i].network == net && strcmp(b[i].name, name) == 0) return i;
  CHECK_MSG(0, "no blob %s", name);
  return 0;
}

static void test_layouts(const char *good) {
  buf f = read_file(good);
  CHECK(f.n > 0);
  if (f.n == 0) return;
  char path[300];
  snprintf(path, sizeof path, "%s/forged.sfpack", workdir);
  const char *here = sf_igemm_isa_name(SF_IGEMM_ISA_BEST);
  const char *packed = (const char *)f.p + SF_PACK_OFF_ISA;
  CHECK_MSG(strcmp(packed, here) == 0, "the pack's layout is %s, this CPU's %s", packed, here);

  /* AVX-512 panels (the header patched, its checksum fixed) on a CPU without AVX-512: if this one
   * has it, the kernel hook declares it unsupported */
  buf b = copy_of(f);
  memset(b.p + SF_PACK_OFF_ISA, 0, SF_PACK_ISA_BYTES);
  memcpy(b.p + SF_PACK_OFF_ISA, "avx512f", 7);
  set32(b.p + SF_PACK_OFF_MR, 8);
  set32(b.p + SF_PACK_OFF_NR, 32);
  fix_crcs(b);
  write_file(path, b);
  const int hooked = sf_igemm_isa_supported(SF_IGEMM_ISA_AVX512);
  if (hooked) sf_igemm_test_disable_isas(1u << SF_IGEMM_ISA_AVX512);
  const char *now = sf_igemm_isa_name(SF_IGEMM_ISA_BEST);
  expect_refused(path, SF_ERR_UNSUPPORTED, "avx512f", now, "AVX-512 panels");
  CHECK(strstr(sf_last_error(), "NR 32") != NULL && strstr(sf_last_error(), "pack the model again") != NULL);
  sf_igemm_test_disable_isas(0);
  free(b.p);

  /* this CPU's own layout declared unsupported: refused, naming it and the fallback */
  const sf_igemm_isa own = sf_igemm_isa_from_name(packed);
  if (own != SF_IGEMM_ISA_SCALAR && own != SF_IGEMM_ISA_BEST) {
    sf_igemm_test_disable_isas(1u << own);
    expect_refused(good, SF_ERR_UNSUPPORTED, packed, sf_igemm_isa_name(SF_IGEMM_ISA_BEST), "own layout disabled");
    sf_igemm_test_disable_isas(0);
    sf_pipeline *p = NULL;
    CHECK_MSG(load_pack(good, &p) == SF_OK, "hook off: %s", sf_last_error());
    sf_pipeline_destroy(p);
  } else {
    printf("note: this CPU runs no SIMD GEMM kernel; the own-layout refusal is not exercised\n");
  }

  /* a pack of another layout this CPU runs (AVX2 panels on an AVX-512 CPU) is used as it is, with
   * the same results (every kernel computes the same bits) */
  if (own == SF_IGEMM_ISA_AVX512 && sf_igemm_isa_supported(SF_IGEMM_ISA_AVX2)) {
    char avx2[300];
    snprintf(avx2, sizeof avx2, "%s/avx2.sfpack", workdir);
    sf_igemm_test_disable_isas(1u << SF_IGEMM_ISA_AVX512);
    sf_params *o = NULL;
    sf_params_create(&o);
    sf_params_set_int(o, SF_PARAM_WEIGHT_TYPE, SF_WEIGHT_F16);
    sf_pipeline *p = NULL;
    CHECK_MSG(sf_pipeline_load(ctx, model, o, &p) == SF_OK, "%s", sf_last_error());
    CHECK_MSG(p && sf_pipeline_write_pack(p, avx2) == SF_OK, "%s", sf_last_error());
    sf_pipeline_destroy(p);
    sf_params_destroy(o);
    sf_igemm_test_disable_isas(0);
    buf a = read_file(avx2);
    CHECK(a.n > SF_PACK_HEADER_BYTES && strcmp((const char *)a.p + SF_PACK_OFF_ISA, "avx2+fma") == 0);
    free(a.p);
    float out[2][4 * 64];
    const char *paths[2] = {good, avx2};
    for (int i = 0; i < 2; i++) {
      p = NULL;
      CHECK_MSG(load_pack(paths[i], &p) == SF_OK, "%s: %s", paths[i], sf_last_error());
      float lat[4 * 64], text[77 * 32], t = 321.0f;
      for (int k = 0; k < 4 * 64; k++) lat[k] = (float)((k * 37) % 17) / 8.0f - 1.0f;
      for (int k = 0; k < 77 * 32; k++) text[k] = (float)((k * 11) % 13) / 6.0f - 1.0f;
      CHECK_MSG(p && sf_unet_predict_v2(p, lat, 4 * 64, 1, 8, 8, &t, 1, text, 77 * 32, 77, out[i], 4 * 64) == SF_OK,
                "%s", sf_last_error());
      sf_pipeline_destroy(p);
    }
    CHECK_MSG(memcmp(out[0], out[1], sizeof out[0]) == 0, "AVX2 and AVX-512 packs give different UNet outputs");
    remove(avx2);
  }

  /* a layout this library does not know */
  b = copy_of(f);
  memset(b.p + SF_PACK_OFF_ISA, 0, SF_PACK_ISA_BYTES);
  memcpy(b.p + SF_PACK_OFF_ISA, "neon-fp16", 9);
  fix_crcs(b);
  write_file(path, b);
  expect_refused(path, SF_ERR_UNSUPPORTED, "neon-fp16", "does not know", "unknown layout");
  free(b.p);
  /* a known layout with another tile than its own */
  b = copy_of(f);
  set32(b.p + SF_PACK_OFF_MR, get32(b.p + SF_PACK_OFF_MR) + 1);
  fix_crcs(b);
  write_file(path, b);
  expect_refused(path, SF_ERR_BAD_MODEL, "tiles", NULL, "tile");
  free(b.p);
  remove(path);
  free(f.p);
}

static void test_architecture(const char *good) {
  sf_diag d = {0};
  sf_pack *pk = sf_pack_open(good, &d);
  CHECK_MSG(pk != NULL, "%s", d.msg);
  if (pk == NULL) return;
  CHECK_EQ_INT(sf_pack_verify(pk, &d), SF_OK);
  const sf_pack_info in = *sf_pack_get_info(pk);
  char path[300];
  snprintf(path, sizeof path, "%s/edited.sfpack", workdir);
  size_t n = 0;
  sf_pack_blob *b = blobs_of(pk, &n);
  const size_t cin = index_of(b, n, SF_NET_UNET, "conv_in.weight"), cout = index_of(b, n, SF_NET_UNET, "conv_out.weight");

  /* as is: loads */
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  sf_pipeline *p = NULL;
  CHECK_MSG(load_pack(path, &p) == SF_OK, "rewritten: %s", sf_last_error());
  sf_pipeline_destroy(p);

  /* two layers' panels swapped: shapes the architecture does not take */
  char tmp[SF_PACK_NAME_BYTES];
  memcpy(tmp, b[cin].name, sizeof tmp);
  memcpy(b[cin].name, b[cout].name, sizeof tmp);
  memcpy(b[cout].name, tmp, sizeof tmp);
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  expect_refused(path, SF_ERR_BAD_MODEL, "conv_in.weight", "imply", "swapped");
  free(b);

  /* a layer missing */
  b = blobs_of(pk, &n);
  snprintf(b[cin].name, sizeof b[cin].name, "conv_in.renamed");
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  expect_refused(path, SF_ERR_BAD_MODEL, "no prepacked layer 'conv_in.weight'", NULL, "missing");
  free(b);

  /* a blob left over */
  b = blobs_of(pk, &n);
  static const float extra[4] = {1, 2, 3, 4};
  memset(&b[n], 0, sizeof b[n]);
  snprintf(b[n].name, sizeof b[n].name, "extra.weight");
  b[n].network = SF_NET_UNET;
  b[n].kind = SF_PACK_TENSOR;
  b[n].dtype = SF_PACK_F32;
  b[n].ndim = 1;
  b[n].shape[0] = 4;
  b[n].size = sizeof extra;
  b[n].data = extra;
  CHECK_MSG(sf_pack_write(path, &in, b, n + 1, &d) == SF_OK, "%s", d.msg);
  expect_refused(path, SF_ERR_BAD_MODEL, "'extra.weight' is not used", NULL, "left over");
  free(b);

  /* a layer of another kind where panels belong */
  b = blobs_of(pk, &n);
  b[cin].kind = SF_PACK_TENSOR;
  b[cin].param = 0;
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  expect_refused(path, SF_ERR_BAD_MODEL, "conv_in.weight", "holds tensor", "kind");
  free(b);

  /* panels of another type: the f16 bytes relabelled as i8 (k twice as long, the same bytes) */
  b = blobs_of(pk, &n);
  b[cin].dtype = SF_PACK_I8;
  b[cin].shape[1] *= 2;
  CHECK_MSG(sf_pack_write(path, &in, b, n, &d) == SF_OK, "%s", d.msg);
  expect_refused(path, SF_ERR_BAD_MODEL, "conv_in.weight", "i8", "type");
  free(b);

  sf_pack_close(pk);
  remove(path);
}

int main(void) {
  snprintf(workdir, sizeof workdir, "/tmp/sf-test-pack-XXXXXX");
  if (mkdtemp(workdir) == NULL) return 1;
  test_good_small();
  test_malformed_small();
  test_writer_refusals();
  test_config_hash();

  const char *fx = sf_test_fixtures();
  if (fx != NULL) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
    model = strdup(dir);
    CHECK(sf_context_create(&ctx) == SF_OK);
    sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
    sf_params *o = NULL;
    sf_params_create(&o);
    sf_params_set_int(o, SF_PARAM_WEIGHT_TYPE, SF_WEIGHT_F16);
    sf_pipeline *p = NULL;
    char good[300];
    snprintf(good, sizeof good, "%s/tiny-f16.sfpack", workdir);
    CHECK_MSG(sf_pipeline_load(ctx, model, o, &p) == SF_OK, "%s", sf_last_error());
    CHECK_MSG(p && sf_pipeline_write_pack(p, good) == SF_OK, "%s", sf_last_error());
    sf_pipeline_destroy(p);
    sf_params_destroy(o);
    test_layouts(good);
    test_architecture(good);
    remove(good);
    sf_context_destroy(ctx);
    free(model);
  }
  rmdir(workdir);
  TEST_MAIN_END();
}
