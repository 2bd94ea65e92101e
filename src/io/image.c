/* sf_image: packed RGB8 owned by the library (the public accessors are in api/image.c). */
#include "io/image.h"

#include <stdlib.h>
#include <string.h>

sf_image *sf_image_new(uint32_t width, uint32_t height, const char *parameters) {
  if (width == 0 || height == 0 || (uint64_t)width * height > ((uint64_t)1 << 28)) return NULL;
  sf_image *img = calloc(1, sizeof *img);
  if (img == NULL) return NULL;
  img->width = width;
  img->height = height;
  img->stride = (size_t)width * 3;
  img->pixels = malloc(img->stride * height);
  img->parameters = strdup(parameters ? parameters : "");
  if (img->pixels == NULL || img->parameters == NULL) {
    sf_image_free(img);
    return NULL;
  }
  return img;
}


void sf_image_free(sf_image *image) {
  if (image == NULL) return;
  free(image->pixels);
  free(image->parameters);
  free(image);
}
