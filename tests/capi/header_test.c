/* tp.h must compile as strict C99 with -Wall -Wextra -pedantic -Werror. */
#include "twistedpic/tp.h"

int tp_header_test_codes(void);

int tp_header_test_codes(void) {
  tp_code c = TP_OK;
  tp_log_fn fn = 0;
  (void)fn;
  return (int)c + (TP_VERSION_CHECK(0, 0, 1) ? 0 : 1);
}
