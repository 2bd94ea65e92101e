/* PNG reading through the public API: the input is written to a temporary file and read with
 * sf_image_read_png; every image that reads is written back (sf_image_write_png) and read again.
 *
 * Invariants: a refusal has a known status and a message; an image that reads has a size, a
 * stride of at least 3 * width and the pixels sf_image_copy returns; the round trip keeps the
 * size, the pixels and the "parameters" text. */
#include "fuzz_common.h"

static const char *in_path, *out_path;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  in_path = fz_tmp_file(".png");
  out_path = fz_tmp_file(".png");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_write_file(in_path, data, size);
  sf_image *img = NULL;
  sf_status s = sf_image_read_png(in_path, &img);
  if (s != SF_OK) {
    FZ_ASSERT(img == NULL, "a failed read returned an image");
    fz_check_failure(s, "sf_image_read_png");
    return 0;
  }
  uint32_t w = sf_image_width(img), h = sf_image_height(img);
  size_t stride = sf_image_stride(img);
  FZ_ASSERT(w > 0 && h > 0 && stride >= 3 * (size_t)w && sf_image_pixels(img) && sf_image_parameters(img),
            "image %ux%u, stride %zu", w, h, stride);
  size_t row = 3 * (size_t)w, need = 0;
  if ((uint64_t)w * h > ((uint64_t)1 << 22)) { /* too big to copy around every run */
    sf_image_destroy(img);
    return 0;
  }
  uint8_t *px = malloc(row * h);
  if (px == NULL) fz_die("out of memory");
  FZ_ASSERT(sf_image_copy(img, px, row * h, row, &need) == SF_OK && need == row * h, "sf_image_copy");
  for (uint32_t y = 0; y < h; y++)
    FZ_ASSERT(memcmp(px + y * row, sf_image_pixels(img) + y * stride, row) == 0, "sf_image_copy row %u", y);

  s = sf_image_write_png(img, out_path);
  FZ_ASSERT(s == SF_OK, "sf_image_write_png: %s", sf_status_string(s));
  sf_image *back = NULL;
  s = sf_image_read_png(out_path, &back);
  FZ_ASSERT(s == SF_OK, "reading the written PNG: %s", sf_status_string(s));
  FZ_ASSERT(sf_image_width(back) == w && sf_image_height(back) == h, "size %ux%u became %ux%u", w, h,
            sf_image_width(back), sf_image_height(back));
  for (uint32_t y = 0; y < h; y++)
    FZ_ASSERT(memcmp(px + y * row, sf_image_pixels(back) + y * sf_image_stride(back), row) == 0,
              "row %u changed in the round trip", y);
  FZ_ASSERT(strcmp(sf_image_parameters(img), sf_image_parameters(back)) == 0, "parameters '%.80s' became '%.80s'",
            sf_image_parameters(img), sf_image_parameters(back));
  sf_image_destroy(back);
  sf_image_destroy(img);
  free(px);
  return 0;
}
