// Test support: a tp_error* owned for one test's calls through the C ABI.
//
//   CapiError err;
//   EXPECT_EQ(tp_registry_preload(reg, "x", err.out()), TP_NOT_FOUND);
//   EXPECT_THAT(err.message(), HasSubstr("x"));
#pragma once

#include <string>

#include "twistedpic/tp.h"

struct CapiError {
  tp_error* e = nullptr;
  CapiError() = default;
  CapiError(const CapiError&) = delete;
  CapiError& operator=(const CapiError&) = delete;
  ~CapiError() { tp_error_free(e); }
  // Frees the previous error, if any, and hands out the slot for the next call.
  tp_error** out() {
    tp_error_free(e);
    e = nullptr;
    return &e;
  }
  std::string message() const { return tp_error_message(e); }
  tp_code code() const { return tp_error_code(e); }
};
