/* A conv2d whose zero padding differs per side, e.g. diffusers' Downsample2D with
 * padding=0, which pads only the right and bottom edge by one before a stride-2 3x3 conv. */
#ifndef SF_GRAPH_CONV2D_ASYM_H
#define SF_GRAPH_CONV2D_ASYM_H

#include <stddef.h>

#include "graph/graph.h"

/* Like sf_g_conv2d with paddings top/right/bottom/left (XNNPACK's order).
 *
 * Limitation: the planner's shape inference only knows a symmetric pad, so the node is
 * recorded with pad = ceil((top+bottom)/2). That gives the true output size only when
 * (side + top + bottom - kernel) and (side + 2*pad - kernel) floor-divide by stride to the
 * same value, e.g. kernel 3, stride 2, pads (0,1,1,0) on EVEN sides. Callers must guarantee
 * such input sizes (the VAE encoder requires sides divisible by its downsampling factor).
 * top+bottom must equal left+right. */
sf_vid sf_g_conv2d_asym(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_ch, size_t kernel,
                        size_t stride, size_t pad_top, size_t pad_right, size_t pad_bottom, size_t pad_left,
                        int bias);

#endif
