/* conv / linear nodes of a dry build (graph/wsrc.h: inspect-only loads, memory estimates): the
 * node the layer would be, carrying the size its packed weights would take and no weights. A
 * graph with such nodes can be planned (value shapes, workspace) but not run. */
#include <stdlib.h>

#include "graph/graph_internal.h"

sf_vid sf_dry_layer_add(sf_graph *g, const sf_wsrc *ws, sf_vid x, size_t out_ch, size_t cin, size_t taps, int bias,
                        const sf_conv_params *conv, sf_wtype type) {
  if (!sf_graph_valid(g, x)) return -1;
  sf_igemm_weights *ig = NULL;
  size_t bytes;
  if (sf_graph_uses_igemm_for(g, ws, type)) {
    ig = malloc(sizeof *ig);
    if (ig == NULL) {
      sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory");
      return -1;
    }
    if (!sf_igemm_layout(ig, out_ch, cin, taps, SF_IGEMM_ISA_BEST, type)) {
      free(ig);
      sf_graph_fail(g, SF_ERR_BAD_MODEL, "a %zu x %zu x %zu layer cannot be packed", out_ch, cin, taps);
      return -1;
    }
    bytes = sf_igemm_weights_bytes(ig);
  } else { /* XNNPACK's f32 operators: their packed copy of the weights and bias */
    bytes = (out_ch * cin * taps + (bias ? out_ch : 0)) * sizeof(float);
  }
  sf_node *n = sf_graph_add_node(g, conv ? SF_OP_CONV2D : SF_OP_LINEAR, &x, 1, out_ch);
  if (n == NULL) {
    free(ig);
    return -1;
  }
  n->ig = ig; /* the layout only: nothing packed (sf_igemm_free frees NULLs) */
  if (conv) n->p.conv = *conv;
  g->dry = 1;
  g->weights_bytes += bytes;
  return n->out;
}
