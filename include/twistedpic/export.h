// twistedpic: symbol visibility for the C++ API.
//
// The libraries are built with -fvisibility=hidden. TP_EXPORT marks the C++
// entry points of the static core libraries; the shared C ABI library exports
// only tp_* symbols through its version script regardless.
#pragma once

#if defined(_WIN32)
#define TP_EXPORT
#else
#define TP_EXPORT __attribute__((visibility("default")))
#endif
