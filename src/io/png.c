/* PNG in and out through zlib: RGB8 with the generation parameters as a tEXt chunk. Failures
 * are recorded as the calling thread's error (core/context.h). */
#include "io/png.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/context.h"

/* ---- PNG writing ---------------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static int write_chunk(FILE *f, const char *type, const uint8_t *data, size_t len) {
  uint8_t hdr[8];
  put_u32(hdr, (uint32_t)len);
  memcpy(hdr + 4, type, 4);
  uLong crc = crc32(0L, (const Bytef *)type, 4);
  if (len) crc = crc32(crc, data, (uInt)len);
  uint8_t tail[4];
  put_u32(tail, (uint32_t)crc);
  return fwrite(hdr, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) && fwrite(tail, 1, 4, f) == 4;
}

sf_status sf_png_write(const sf_image *image, const char *path) {
  /* Filter byte 0 (none) before each row, then one zlib stream. */
  size_t raw_len = (image->stride + 1) * image->height;
  uint8_t *raw = malloc(raw_len);
  uLongf z_len = compressBound((uLong)raw_len);
  uint8_t *z = malloc(z_len);
  size_t text_len = strlen("parameters") + 1 + strlen(image->parameters);
  uint8_t *text = malloc(text_len);
  if (raw == NULL || z == NULL || text == NULL) {
    free(raw);
    free(z);
    free(text);
    return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_image_write_png: out of memory");
  }
  for (uint32_t y = 0; y < image->height; y++) {
    raw[y * (image->stride + 1)] = 0;
    memcpy(raw + y * (image->stride + 1) + 1, image->pixels + y * image->stride, image->stride);
  }
  int zs = compress2(z, &z_len, raw, (uLong)raw_len, 6);
  free(raw);
  if (zs != Z_OK) {
    free(z);
    free(text);
    if (zs == Z_MEM_ERROR) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_image_write_png: out of memory (zlib)");
    return sf_ctx_error(NULL, SF_ERR_INTERNAL, "sf_image_write_png: zlib compress2 failed (%d)", zs);
  }
  /* tEXt is Latin-1 by the spec, but SD tools write and read the parameters as UTF-8. */
  memcpy(text, "parameters", 10);
  text[10] = 0;
  memcpy(text + 11, image->parameters, text_len - 11);
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    const int err = errno;
    free(z);
    free(text);
    return sf_ctx_error(NULL, err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "cannot create %s: %s", path,
                        strerror(err));
  }
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t ihdr[13];
  put_u32(ihdr, image->width);
  put_u32(ihdr + 4, image->height);
  ihdr[8] = 8;  /* bit depth */
  ihdr[9] = 2;  /* truecolour RGB */
  ihdr[10] = 0; /* deflate */
  ihdr[11] = 0; /* adaptive filtering */
  ihdr[12] = 0; /* no interlace */
  int ok = fwrite(sig, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) &&
           (image->parameters[0] == '\0' || write_chunk(f, "tEXt", text, text_len)) &&
           write_chunk(f, "IDAT", z, z_len) && write_chunk(f, "IEND", NULL, 0);
  ok = (fclose(f) == 0) && ok;
  free(z);
  free(text);
  if (!ok) return sf_ctx_error(NULL, SF_ERR_IO, "error writing %s", path);
  return SF_OK;
}

/* ---- PNG reading (8-bit gray, gray+alpha, RGB, RGBA; no interlace) ------------------------ */

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

sf_status sf_png_read(const char *path, sf_image **out_image) {
  if (path == NULL || out_image == NULL)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_image_read_png: NULL argument");
  *out_image = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    const int err = errno;
    return sf_ctx_error(NULL, err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "cannot open %s: %s", path,
                        strerror(err));
  }
  struct stat st_file;
  if (fstat(fileno(f), &st_file) != 0 || !S_ISREG(st_file.st_mode)) {
    fclose(f);
    return sf_ctx_error(NULL, SF_ERR_IO, "%s is not a regular file", path);
  }
  uint8_t *file = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      if (cap > ((size_t)1 << 30)) break;
      uint8_t *nf = realloc(file, cap);
      if (nf == NULL) break;
      file = nf;
    }
    size_t got = fread(file + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  fclose(f);
  sf_status st = SF_OK;
  uint8_t *idat = NULL, *raw = NULL;
  size_t idat_len = 0;
  uint32_t w = 0, h = 0;
  int color = -1, channels = 0;
  char *parameters = NULL;
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (file == NULL || len < 8 || memcmp(file, sig, 8) != 0) {
    st = sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s is not a PNG file", path);
    goto done;
  }
  for (size_t off = 8; off + 12 <= len;) {
    uint32_t clen = get_u32(file + off);
    const uint8_t *type = file + off + 4, *data = file + off + 8;
    if (clen > len - off - 12) {
      st = sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: truncated chunk", path);
      goto done;
    }
    if (memcmp(type, "IHDR", 4) == 0 && clen == 13) {
      w = get_u32(data);
      h = get_u32(data + 4);
      color = data[9];
      if (data[8] != 8 || data[12] != 0 || (color != 0 && color != 2 && color != 4 && color != 6)) {
        st = sf_ctx_error(NULL, SF_ERR_UNSUPPORTED, "%s: only 8-bit non-interlaced gray/RGB(A) PNGs are read", path);
        goto done;
      }
      channels = color == 0 ? 1 : color == 4 ? 2 : color == 2 ? 3 : 4;
    } else if (memcmp(type, "IDAT", 4) == 0) {
      uint8_t *ni = realloc(idat, idat_len + clen + 1);
      if (ni == NULL) {
        st = sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
      }
      idat = ni;
      memcpy(idat + idat_len, data, clen);
      idat_len += clen;
    } else if (memcmp(type, "tEXt", 4) == 0 && parameters == NULL && clen > 11 &&
               memcmp(data, "parameters", 11) == 0) {
      parameters = malloc(clen - 11 + 1);
      if (parameters == NULL) {
        st = sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
      }
      memcpy(parameters, data + 11, clen - 11);
      parameters[clen - 11] = '\0';
    } else if (memcmp(type, "IEND", 4) == 0) {
      break;
    }
    off += 12 + (size_t)clen;
  }
  if (channels == 0 || w == 0 || h == 0 || (uint64_t)w * h > ((uint64_t)1 << 28) || idat == NULL) {
    st = sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: missing or invalid IHDR/IDAT", path);
    goto done;
  }
  size_t row = (size_t)w * channels;
  uLongf raw_len = (uLongf)((row + 1) * h);
  raw = malloc(raw_len);
  if (raw == NULL) {
    st = sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  uLongf expect = raw_len;
  int zs = uncompress(raw, &raw_len, idat, (uLong)idat_len);
  if (zs == Z_MEM_ERROR) {
    st = sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "%s: out of memory (zlib)", path);
    goto done;
  }
  if (zs != Z_OK || raw_len != expect) {
    st = sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: corrupt image data", path);
    goto done;
  }
  sf_image *img = sf_image_new(w, h, parameters);
  if (img == NULL) {
    st = sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  for (uint32_t y = 0; y < h; y++) {
    uint8_t *cur = raw + y * (row + 1) + 1, *prev = y ? raw + (y - 1) * (row + 1) + 1 : NULL;
    int filter = cur[-1];
    for (size_t x = 0; x < row; x++) {
      int a = x >= (size_t)channels ? cur[x - channels] : 0, b = prev ? prev[x] : 0;
      int c = prev && x >= (size_t)channels ? prev[x - channels] : 0;
      switch (filter) {
        case 0: break;
        case 1: cur[x] = (uint8_t)(cur[x] + a); break;
        case 2: cur[x] = (uint8_t)(cur[x] + b); break;
        case 3: cur[x] = (uint8_t)(cur[x] + ((a + b) >> 1)); break;
        case 4: cur[x] = (uint8_t)(cur[x] + paeth(a, b, c)); break;
        default:
          sf_image_free(img);
          st = sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "%s: bad row filter %d", path, filter);
          goto done;
      }
    }
    uint8_t *dst = img->pixels + (size_t)y * img->stride;
    for (uint32_t x = 0; x < w; x++) {
      const uint8_t *px = cur + (size_t)x * channels;
      /* Alpha is dropped: diffusers converts init images with .convert("RGB"). */
      dst[3 * x] = px[0];
      dst[3 * x + 1] = channels >= 3 ? px[1] : px[0];
      dst[3 * x + 2] = channels >= 3 ? px[2] : px[0];
    }
  }
  *out_image = img;
done:
  free(parameters);
  free(file);
  free(idat);
  free(raw);
  return st;
}
