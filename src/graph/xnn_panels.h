/* How conv / linear weights are split into output-channel panels (see sf_node.panels) when
 * they are lowered onto XNNPACK, i.e. on CPUs without the own GEMM's SIMD microkernels
 * (graph/ops/igemm.h) or in graphs that ask for XNNPACK (sf_graph.xnnpack_gemm).
 *
 * XNNPACK's GEMM/IGEMM walks its task grid with output channels innermost, so a layer whose
 * packed weights exceed the per-core L2 re-streams all of them from L3/memory for every few
 * output rows. One operator per panel of channels keeps each panel's weights in L2 while all
 * rows pass. Measured on this project's 2-core AVX-512 machine (2 MiB L2 per core), SD
 * shapes: conv3x3 32x32x640 and 16x16x1280 went from ~110-120 to ~160-210 GFLOP/s, and
 * fully-connected 1024x640->5120 / 256x1280->10240 from ~110-130 to ~225-250. Panels of
 * ~360-900 KiB (conv) and ~160-640 KiB (fully-connected) were within noise of each other.
 * The split depends on the weight shape only, and every output value is still computed by
 * one microkernel over the full reduction: results are bit-identical to the unsplit
 * operator for any thread count (tests/test_xnn_panels.c). */
#ifndef SF_GRAPH_XNN_PANELS_H
#define SF_GRAPH_XNN_PANELS_H

#include <stddef.h>

enum {
  SF_CONV_PANEL_BUDGET = 768 * 1024, /* packed weight bytes per conv panel */
  SF_FC_PANEL_BUDGET = 384 * 1024,   /* per fully-connected panel */
  SF_PANEL_ALIGN = 16                /* output channels: a multiple of the widest NR (AVX-512) */
};

/* Output channels per panel for a layer of out_ch channels whose weights take
 * bytes_per_oc bytes per output channel; out_ch itself when it fits the budget. */
static inline size_t sf_xnn_panel_channels(size_t out_ch, size_t bytes_per_oc, size_t budget) {
  if (out_ch == 0) return 1;
  if (out_ch * bytes_per_oc <= budget || out_ch <= SF_PANEL_ALIGN) return out_ch;
  size_t panels = (out_ch * bytes_per_oc + budget - 1) / budget;
  size_t per = (out_ch + panels - 1) / panels;
  per = (per + SF_PANEL_ALIGN - 1) / SF_PANEL_ALIGN * SF_PANEL_ALIGN;
  return per < out_ch ? per : out_ch;
}

/* Whether to run the panels as tasks of one parallel dispatch (each panel single-threaded)
 * rather than one after another over the whole pool. Tasks need enough panels to balance
 * the threads; in exchange a layer costs one dispatch instead of one per panel, which
 * matters on a loaded machine where every dispatch waits for the slowest thread to be
 * scheduled, and each core's L2 then holds a different panel. Results are the same. */
static inline int sf_xnn_panels_in_tasks(size_t n_panels, size_t threads) {
  return threads > 1 && n_panels >= 3 * threads;
}

#endif
