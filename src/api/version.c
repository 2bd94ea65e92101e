#include "snapfusion.h"

#if SF_ABI_VERSION != 1
#error "lib/snapfusion.map, CMakeLists.txt SF_ABI_VERSION and the header must agree"
#endif

const char *sf_version(void) { return SF_VERSION_STRING; }
int sf_version_number(void) { return SF_VERSION_MAJOR * 10000 + SF_VERSION_MINOR * 100 + SF_VERSION_PATCH; }
int sf_abi_version(void) { return SF_ABI_VERSION; }

const char *sf_status_string(sf_status status) {
  switch (status) {
    case SF_OK: return "ok";
    case SF_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SF_ERR_IO: return "i/o error";
    case SF_ERR_BAD_MODEL: return "bad model file";
    case SF_ERR_UNSUPPORTED: return "unsupported";
    case SF_ERR_OUT_OF_MEMORY: return "out of memory";
    case SF_ERR_CANCELLED: return "cancelled";
    case SF_ERR_BACKEND: return "backend failure";
    case SF_ERR_BAD_STATE: return "bad state";
    case SF_ERR_INTERNAL: return "internal error";
    case SF_ERR_NOT_FOUND: return "not found";
  }
  return "unknown status";
}
