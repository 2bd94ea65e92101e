/* Pack files: a pipeline's weights prepacked (GEMM panels in their microkernel's layout, and
 * every other parameter its networks hold), written once and then mapped read-only and used in
 * place, so the weights live in clean file-backed pages instead of anonymous memory.
 *
 * This file knows the format only: it writes a file from blob descriptors and validates one
 * (every field, offset and size checked against the file with overflow-safe arithmetic) before
 * anything reads a blob. What the blobs must be (names, shapes, types, the panel layout a CPU
 * can run) is checked by the weight source that hands them to the network builders
 * (graph/wsrc.h) and by the pipeline that opens the file.
 *
 * Layout (integers little-endian; offsets from the start of the file):
 *   header   SF_PACK_HEADER_BYTES at 0
 *   index    blob_count entries of SF_PACK_ENTRY_BYTES at index_offset (after the header)
 *   payload  the blobs, each at a multiple of SF_PACK_ALIGN, after the index, not overlapping
 * Header:
 *     0  u8[8]    magic "SFPACK\x1a\n"
 *     8  u32      format version (SF_PACK_VERSION)
 *    12  u32      header bytes (SF_PACK_HEADER_BYTES)
 *    16  u32      library version that wrote it (MAJOR*10000 + MINOR*100 + PATCH)
 *    20  char[16] the same as text, NUL-padded
 *    36  u32      flags (0)
 *    40  char[32] panel layout: the microkernel's name ("avx2+fma"), NUL-padded
 *    72  u32      its MR (rows per tile; informative)
 *    76  u32      its NR: the panel width of every PANELS blob
 *    80  u32      weight policy the pipeline was loaded with (sf_weight_type, 0: as stored)
 *    84  u32      the resulting weight type (sf_weight_type of the UNet's layers: 1, 2 or 3)
 *    88  u32      networks (sf_network bits) whose parameters are in the file
 *    92  u32      blob count
 *    96  u64      index offset
 *   104  u64      file bytes (the whole file: a truncated copy is refused at once)
 *   112  u8[32]   SHA-256 of the text encoder's config (sf_pack_config_hash), zero if absent
 *   144  u8[32]   the same of the UNet's config
 *   176  u8[32]   the same of the VAE's config (decoder and encoder)
 *   208  u32      CRC-32 (zlib) of the index
 *   212  zero     reserved
 *   508  u32      CRC-32 of header bytes 0..508
 * Every format version keeps the magic, the version at 8, the header size at 12 and the header's
 * CRC-32 in its last 4 bytes, so a damaged header is told apart from a newer version.
 * Index entry (one blob):
 *     0  char[160] name: printable ASCII, 1..159 bytes, NUL-terminated and NUL-padded
 *   160  u32      network: one sf_network bit
 *   164  u32      kind (sf_pack_kind)
 *   168  u32      dtype (sf_pack_dtype)
 *   172  u32      ndim, 1..4
 *   176  u64[4]   shape (dims past ndim zero; every dim >= 1; their product * dtype size = size)
 *   208  u64      param: for PANELS the output channels n (the last tile's columns past n are
 *                 zero); 0 otherwise
 *   216  u64      offset (a multiple of SF_PACK_ALIGN)
 *   224  u64      size in bytes
 *   232  u32      CRC-32 of the blob's bytes (checked by sf_pack_verify, not at load: that would
 *                 read every page)
 *   236  zero     reserved
 * Blobs are unique by (network, name). */
#ifndef SF_IO_PACK_H
#define SF_IO_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/json.h"

#define SF_PACK_MAGIC "SFPACK\x1a\n"
enum {
  SF_PACK_VERSION = 1,
  SF_PACK_HEADER_BYTES = 512,
  SF_PACK_ENTRY_BYTES = 256,
  SF_PACK_ALIGN = 64,
  SF_PACK_NAME_BYTES = 160, /* with the NUL */
  SF_PACK_ISA_BYTES = 32,
  SF_PACK_MAX_DIMS = 4,
  SF_PACK_CONFIGS = 3 /* text encoder, UNet, VAE */
};

/* Header field offsets (tests patch them). */
enum {
  SF_PACK_OFF_VERSION = 8,
  SF_PACK_OFF_LIBRARY = 16,
  SF_PACK_OFF_ISA = 40,
  SF_PACK_OFF_MR = 72,
  SF_PACK_OFF_NR = 76,
  SF_PACK_OFF_POLICY = 80,
  SF_PACK_OFF_WEIGHT_TYPE = 84,
  SF_PACK_OFF_NETWORKS = 88,
  SF_PACK_OFF_COUNT = 92,
  SF_PACK_OFF_INDEX = 96,
  SF_PACK_OFF_FILE_BYTES = 104,
  SF_PACK_OFF_CONFIGS = 112,
  SF_PACK_OFF_INDEX_CRC = 208,
  SF_PACK_OFF_HEADER_CRC = 508
};
/* Index entry field offsets. */
enum {
  SF_PACK_E_NETWORK = 160,
  SF_PACK_E_KIND = 164,
  SF_PACK_E_DTYPE = 168,
  SF_PACK_E_NDIM = 172,
  SF_PACK_E_SHAPE = 176,
  SF_PACK_E_PARAM = 208,
  SF_PACK_E_OFFSET = 216,
  SF_PACK_E_SIZE = 224,
  SF_PACK_E_CRC = 232
};

typedef enum sf_pack_kind {
  SF_PACK_PANELS = 1, /* a GEMM layer's packed weights [n_tiles, k, nr] (named "<layer>.weight") */
  SF_PACK_BIAS = 2,   /* its bias [n_tiles * nr] f32, zeros past n and for a layer without bias
                       * ("<layer>.bias") */
  SF_PACK_SCALE = 3,  /* q8 layers: per output channel scales [n_tiles * nr] f32
                       * ("<layer>.weight_scale") */
  SF_PACK_TENSOR = 4  /* any other parameter in its checkpoint shape (norms, embeddings) */
} sf_pack_kind;

typedef enum sf_pack_dtype { SF_PACK_F32 = 0, SF_PACK_F16 = 1, SF_PACK_I8 = 2 } sf_pack_dtype;

size_t sf_pack_dtype_bytes(uint32_t dtype);
const char *sf_pack_dtype_name(uint32_t dtype);
const char *sf_pack_kind_name(uint32_t kind);

/* One blob: what a writer is given (data: its bytes) and what a reader finds (data: in the
 * mapping). */
typedef struct sf_pack_blob {
  char name[SF_PACK_NAME_BYTES];
  uint32_t network, kind, dtype, ndim;
  uint64_t shape[SF_PACK_MAX_DIMS];
  uint64_t param;
  uint64_t offset, size;
  uint32_t crc;
  const void *data;
} sf_pack_blob;

typedef struct sf_pack_info {
  uint32_t version;            /* format version */
  uint32_t library_version;    /* of the writer */
  char library[16];            /* "1.1.0" */
  char isa[SF_PACK_ISA_BYTES]; /* panel layout: microkernel name */
  uint32_t mr, nr;
  uint32_t weight_policy, weight_type; /* sf_weight_type */
  uint32_t networks;                    /* sf_network bits */
  uint8_t config_sha256[SF_PACK_CONFIGS][32];
  uint64_t file_bytes;
} sf_pack_info;

/* Index of the config slot of a network bit (text encoder 0, UNet 1, VAE decoder/encoder 2), -1
 * for others. */
int sf_pack_config_slot(uint32_t network);
/* SHA-256 of a config as a pack binds it: its JSON tree (types, strings, number literals, keys in
 * document order), without the top-level keys starting with '_' other than "_class_name"
 * (_name_or_path, _diffusers_version, _commit_hash: where and by which version a model was saved,
 * not what it is), so whitespace and those do not count and every value that shapes a network
 * does. */
void sf_pack_config_hash(const sf_json *config, uint8_t out[32]);

/* ---- writing ---- */

/* Writes info and the n blobs (name, network, kind, dtype, ndim, shape, param, data and size
 * given; offsets and CRCs computed here) to path, through path + ".partial" renamed at the end, so
 * a failed write leaves no file at path. Checks what the format requires (names, dims) first.
 * SF_ERR_IO naming the path, SF_ERR_INVALID_ARGUMENT for a blob the format cannot hold. */
sf_status sf_pack_write(const char *path, const sf_pack_info *info, const sf_pack_blob *blobs, size_t n,
                        sf_diag *d);

/* ---- reading ---- */

typedef struct sf_pack sf_pack;

/* Maps the file at path (the file system) read-only and validates its header and index (not the
 * payload's CRCs). Messages start with the path. SF_ERR_IO (cannot open or map),
 * SF_ERR_BAD_MODEL (not a pack, or malformed: the message says which field), SF_ERR_UNSUPPORTED
 * (another format version), SF_ERR_OUT_OF_MEMORY. */
sf_pack *sf_pack_open(const char *path, sf_diag *d);
/* The same over size bytes at data (borrowed, must outlive the pack); label names it. */
sf_pack *sf_pack_open_memory(const void *data, size_t size, const char *label, sf_diag *d);
void sf_pack_close(sf_pack *pk);

const sf_pack_info *sf_pack_get_info(const sf_pack *pk);
const char *sf_pack_label(const sf_pack *pk);
size_t sf_pack_count(const sf_pack *pk);
/* In file order. */
const sf_pack_blob *sf_pack_at(const sf_pack *pk, size_t index);
/* Position of a blob of pk in file order. */
size_t sf_pack_index_of(const sf_pack *pk, const sf_pack_blob *b);
/* The blob (network, name), NULL if absent. */
const sf_pack_blob *sf_pack_find(const sf_pack *pk, uint32_t network, const char *name);
/* Drops the mapped pages of the networks' blobs from the resident set (they stay in the page
 * cache and come back when read): after those networks were freed. No-op for memory packs. */
void sf_pack_drop_pages(const sf_pack *pk, uint32_t networks);
/* Every blob's CRC against its bytes (reads the whole file); the first mismatch is
 * SF_ERR_BAD_MODEL naming the blob. */
sf_status sf_pack_verify(const sf_pack *pk, sf_diag *d);

#endif
