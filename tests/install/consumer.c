/* A program built against an installed libsnapfusion, as a user would build it. */
#include <snapfusion.h>
#include <stdio.h>

int main(void) {
  if (sf_abi_version() != SF_ABI_VERSION) {
    fprintf(stderr, "ABI mismatch: header %d, library %d\n", SF_ABI_VERSION, sf_abi_version());
    return 1;
  }
  sf_context *ctx = NULL;
  if (sf_context_create(&ctx) != SF_OK) return 1;
  printf("libsnapfusion %s\n", sf_version());
  sf_context_destroy(ctx);
  return 0;
}
