/* The image object (packed RGB8 plus the generation parameters). */
#ifndef SF_IO_IMAGE_H
#define SF_IO_IMAGE_H

#include "snapfusion.h"

struct sf_image {
  uint32_t width, height;
  size_t stride;
  uint8_t *pixels;
  char *parameters; /* never NULL */
};

/* NULL when out of memory or the size is absurd. */
sf_image *sf_image_new(uint32_t width, uint32_t height, const char *parameters);
void sf_image_free(sf_image *image);

#endif
