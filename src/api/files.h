/* The in-memory file sets of the public API (sf_files) as the loader sees them. */
#ifndef SF_API_FILES_H
#define SF_API_FILES_H

#include "io/vfs.h"
#include "snapfusion.h"

/* The set's file source (a memory sf_vfs). */
const sf_vfs *sf_files_vfs(const sf_files *files);

#endif
