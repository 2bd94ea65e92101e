/* PNG files of images (8-bit; read: gray, gray+alpha, RGB, RGBA, no interlace). */
#ifndef SF_IO_PNG_H
#define SF_IO_PNG_H

#include "io/image.h"

/* Writes RGB8 with the parameters (if any) as a "parameters" tEXt chunk. */
sf_status sf_png_write(const sf_image *image, const char *path);
/* Reads a PNG; its "parameters" text chunk, if any, becomes the image's parameters. */
sf_status sf_png_read(const char *path, sf_image **out_image);

#endif
