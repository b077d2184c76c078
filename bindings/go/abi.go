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
	"offsetof(tp_memory_policy_vtable.rank_victims)": unsafe.Offsetof(C.tp_memory_policy_vtable{}.rank_victims),
	"offsetof(tp_model_info.last_error)":        unsafe.Offsetof(C.tp_model_info{}.last_error),
	"offsetof(tp_model_info.device)":            unsafe.Offsetof(C.tp_model_info{}.device),
	"sizeof(tp_device_info)":                    unsafe.Sizeof(C.tp_device_info{}),
	"offsetof(tp_device_info.scratch_bytes)":    unsafe.Offsetof(C.tp_device_info{}.scratch_bytes),
	"offsetof(tp_device_info.resident_models)":  unsafe.Offsetof(C.tp_device_info{}.resident_models),
	"offsetof(tp_stats.evictions)":              unsafe.Offsetof(C.tp_stats{}.evictions),
	"offsetof(tp_stats.reload_ms_p95)":          unsafe.Offsetof(C.tp_stats{}.reload_ms_p95),
	"offsetof(tp_event.error)":                  unsafe.Offsetof(C.tp_event{}.error),
	"sizeof(tp_progress)":                       unsafe.Sizeof(C.tp_progress{}),
	"offsetof(tp_progress.elapsed_s)":           unsafe.Offsetof(C.tp_progress{}.elapsed_s),
	"offsetof(tp_progress.model)":               unsafe.Offsetof(C.tp_progress{}.model),
	"sizeof(tp_image)":                          unsafe.Sizeof(C.tp_image{}),
	"offsetof(tp_image.stride)":                 unsafe.Offsetof(C.tp_image{}.stride),
	"offsetof(tp_image.pixels)":                 unsafe.Offsetof(C.tp_image{}.pixels),
	"sizeof(tp_result_info)":                    unsafe.Sizeof(C.tp_result_info{}),
	"offsetof(tp_result_info.guidance_scale)":   unsafe.Offsetof(C.tp_result_info{}.guidance_scale),
	"offsetof(tp_result_info.seed)":             unsafe.Offsetof(C.tp_result_info{}.seed),
	"offsetof(tp_result_info.total_s)":          unsafe.Offsetof(C.tp_result_info{}.total_s),
	"offsetof(tp_result_info.warning_count)":    unsafe.Offsetof(C.tp_result_info{}.warning_count),
	"sizeof(tp_plan_info)":                      unsafe.Sizeof(C.tp_plan_info{}),
	"offsetof(tp_plan_info.from)":               unsafe.Offsetof(C.tp_plan_info{}.from),
	"offsetof(tp_plan_info.bytes_to_move)":      unsafe.Offsetof(C.tp_plan_info{}.bytes_to_move),
	"offsetof(tp_plan_info.eviction_count)":     unsafe.Offsetof(C.tp_plan_info{}.eviction_count),
	"offsetof(tp_plan_info.explanation)":        unsafe.Offsetof(C.tp_plan_info{}.explanation),
}
