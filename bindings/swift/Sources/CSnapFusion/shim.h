/* The installed public header, found on the include path (pkg-config snapfusion). */
#include <snapfusion.h>
