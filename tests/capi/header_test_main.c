/* Links a C99 program against the C ABI and checks header == library. */
#include <stdio.h>
#include <string.h>

#include "twistedpic/tp.h"

int tp_header_test_codes(void);

int main(void) {
  if (tp_header_test_codes() != 0) return 1;
  if (tp_version_number() != TP_VERSION_NUMBER) {
    fprintf(stderr, "header %d != library %u\n", TP_VERSION_NUMBER, tp_version_number());
    return 1;
  }
  if (strcmp(tp_code_name(TP_NOT_FOUND), "NOT_FOUND") != 0) return 1;
  printf("ok: tp.h is C99 and matches libtwistedpic %s\n", tp_version_string());
  return 0;
}
