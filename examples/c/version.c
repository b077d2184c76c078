/* The smallest C host: checks the header against the library. */
#include <stdio.h>

#include "twistedpic/tp.h"

int main(void) {
  if (tp_version_number() != TP_VERSION_NUMBER) {
    fprintf(stderr, "twistedpic header/library mismatch\n");
    return 1;
  }
  printf("libtwistedpic %s (C ABI, SOVERSION %d)\n", tp_version_string(), TP_SOVERSION);
  return 0;
}
