/* The public image functions: accessors, copies, PNG files (io/png.c). */
#include <string.h>

#include "core/context.h"
#include "io/image.h"
#include "io/png.h"

uint32_t sf_image_width(const sf_image *image) { return image ? image->width : 0; }
uint32_t sf_image_height(const sf_image *image) { return image ? image->height : 0; }
size_t sf_image_stride(const sf_image *image) { return image ? image->stride : 0; }
const uint8_t *sf_image_pixels(const sf_image *image) { return image ? image->pixels : NULL; }
const char *sf_image_parameters(const sf_image *image) { return image ? image->parameters : ""; }

void sf_image_destroy(sf_image *image) { sf_image_free(image); }

sf_status sf_image_copy(const sf_image *image, uint8_t *buffer, size_t capacity, size_t stride, size_t *out_needed) {
  if (image == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_image_copy: image is NULL");
  if (stride == 0) stride = image->stride;
  if (stride < image->stride)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_image_copy: stride %zu < %zu", stride, image->stride);
  size_t need = stride * image->height;
  if (out_needed) *out_needed = need;
  if (buffer == NULL && capacity == 0) return SF_OK; /* a size query */
  if (buffer == NULL || capacity < need)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_image_copy: buffer holds %zu bytes, %zu needed", capacity,
                        need);
  for (uint32_t y = 0; y < image->height; y++)
    memcpy(buffer + y * stride, image->pixels + y * image->stride, image->stride);
  return SF_OK;
}


sf_status sf_image_write_png(const sf_image *image, const char *path) {
  if (image == NULL || path == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_image_write_png: NULL argument");
  return sf_png_write(image, path);
}

sf_status sf_image_read_png(const char *path, sf_image **out_image) { return sf_png_read(path, out_image); }
