package twistedpic

/*
#include "twistedpic/tp.h"
*/
import "C"

import "unsafe"

// cLayout is the layout of tp.h's structs as cgo compiled them, for the ABI
// test (cgo cannot be used in _test.go files): sizes, and the offsets of each
// struct's last field.
var cLayout = map[string]uintptr{
	"sizeof(tp_policy_model)":                   unsafe.Sizeof(C.tp_policy_model{}),
	"sizeof(tp_memory_policy_vtable)":           unsafe.Sizeof(C.tp_memory_policy_vtable{}),
	"sizeof(tp_model_info)":                     unsafe.Sizeof(C.tp_model_info{}),
	"sizeof(tp_stats)":                          unsafe.Sizeof(C.tp_stats{}),
	"sizeof(tp_event)":                          unsafe.Sizeof(C.tp_event{}),
	"offsetof(tp_policy_model.idle_seconds)":    unsafe.Offsetof(C.tp_policy_model{}.idle_seconds),
	"offsetof(tp_memory_policy_vtable.destroy)": unsafe.Offsetof(C.tp_memory_policy_vtable{}.destroy),
	"offsetof(tp_model_info.last_error)":        unsafe.Offsetof(C.tp_model_info{}.last_error),
	"offsetof(tp_stats.evictions)":              unsafe.Offsetof(C.tp_stats{}.evictions),
	"offsetof(tp_stats.reload_ms_p95)":          unsafe.Offsetof(C.tp_stats{}.reload_ms_p95),
	"offsetof(tp_event.error)":                  unsafe.Offsetof(C.tp_event{}.error),
}
