/* twistedpic 0.1.0's version.h, frozen (generated from cmake/version.h.in at
 * 7c04118), for tests/capi/frozen_v01_test.c: the v0.1 tp.h includes it. Do
 * not edit: it is what a caller built against v0.1 compiled with. */
#ifndef TWISTEDPIC_VERSION_H
#define TWISTEDPIC_VERSION_H

#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 1
#define TP_VERSION_PATCH 0
#define TP_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, as in zstd. */
#define TP_VERSION_NUMBER (TP_VERSION_MAJOR * 10000 + TP_VERSION_MINOR * 100 + TP_VERSION_PATCH)
/* True when the headers are at least MAJOR.MINOR.PATCH. */
#define TP_VERSION_CHECK(major, minor, patch) \
  (TP_VERSION_NUMBER >= ((major) * 10000 + (minor) * 100 + (patch)))
#define TP_SOVERSION 0

#endif /* TWISTEDPIC_VERSION_H */
