#include <stdio.h>

#include "twistedpic/tp.h"

int main(void) {
  printf("libtwistedpic %s (C ABI, SOVERSION %d)\n", tp_version_string(), TP_SOVERSION);
  return tp_version_number() == TP_VERSION_NUMBER ? 0 : 1;
}
