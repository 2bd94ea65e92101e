/* Pack files of a pipeline (io/pack.h for the format): writing the parameters of a loaded
 * pipeline's networks, and opening one for a load (SF_PARAM_PACK_PATH), refused when it does not
 * fit the folder (another config), the options (another weight type) or this CPU (a panel layout
 * it cannot run). */
#ifndef SF_PIPELINE_PACK_H
#define SF_PIPELINE_PACK_H

#include "core/diag.h"
#include "pipeline/pipeline.h"

/* The networks a pack covers, as load options leave them: when components_given, every network
 * asked for must be in the pack (else SF_ERR_INVALID_ARGUMENT naming it) unless the folder lacks
 * it; otherwise the networks asked for are cut down to the pack's (TAESD bits stay). p->pack is
 * open. */
sf_status sf_pipeline_pack_networks(const sf_pipeline *p, unsigned *networks, int components_given, sf_diag *d);

/* Opens path into p->pack (mapped read-only) and checks what needs no folder: that this CPU runs
 * the panel layout for every weight type the file holds, and that weight_type (an
 * SF_PARAM_WEIGHT_TYPE value, 0: unset) agrees with the file's. Sets p->weight_policy to the
 * file's. */
sf_status sf_pipeline_open_pack(sf_pipeline *p, const char *path, int64_t weight_type, sf_diag *d);
/* After the folder is open: every network in `networks` (sf_network bits) that the pack covers
 * must have been packed from the same config (sf_pack_config_hash). */
sf_status sf_pipeline_check_pack_configs(const sf_pipeline *p, unsigned networks, sf_diag *d);

/* Writes the parameters of every resident network of p (text encoder, UNet, VAE decoder and
 * encoder; TAESD is not packed) to path. SF_ERR_BAD_STATE for inspect-only and low-memory
 * pipelines, SF_ERR_UNSUPPORTED for layers on XNNPACK. */
sf_status sf_pipeline_write_pack_file(const sf_pipeline *p, const char *path, sf_diag *d);

#endif
