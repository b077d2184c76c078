package twistedpic

import "testing"

// The layouts tp.h documents (tests/capi/abi_test.c): v0.1 and v0.2 structs,
// x86-64 and aarch64 Linux.
func TestABILayout(t *testing.T) {
	want := map[string]uintptr{
		"sizeof(tp_policy_model)":                   56,
		"sizeof(tp_memory_policy_vtable)":           32,
		"sizeof(tp_model_info)":                     120,
		"sizeof(tp_stats)":                          200,
		"sizeof(tp_event)":                          64,
		"offsetof(tp_policy_model.idle_seconds)":    48,
		"offsetof(tp_memory_policy_vtable.destroy)": 24,
		"offsetof(tp_model_info.last_error)":        112,
		"offsetof(tp_stats.evictions)":              64,
		"offsetof(tp_stats.reload_ms_p95)":          192,
		"offsetof(tp_event.error)":                  56,
		"sizeof(tp_progress)":                       32,
		"offsetof(tp_progress.elapsed_s)":           16,
		"offsetof(tp_progress.model)":               24,
		"sizeof(tp_image)":                          24,
		"offsetof(tp_image.stride)":                 12,
		"offsetof(tp_image.pixels)":                 16,
		"sizeof(tp_result_info)":                    88,
		"offsetof(tp_result_info.guidance_scale)":   24,
		"offsetof(tp_result_info.seed)":             32,
		"offsetof(tp_result_info.total_s)":          72,
		"offsetof(tp_result_info.warning_count)":    80,
		"sizeof(tp_plan_info)":                      64,
		"offsetof(tp_plan_info.from)":               12,
		"offsetof(tp_plan_info.bytes_to_move)":      16,
		"offsetof(tp_plan_info.eviction_count)":     48,
		"offsetof(tp_plan_info.explanation)":        56,
	}
	if len(cLayout) != len(want) {
		t.Errorf("cLayout has %d entries, want %d", len(cLayout), len(want))
	}
	for k, v := range want {
		if got, ok := cLayout[k]; !ok || got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
	stages := []Stage{StageEncode, StageDenoise, StageDecode, StageWaiting}
	for i, s := range stages {
		if int(s) != i {
			t.Errorf("%v = %d, want %d", s, s, i)
		}
	}
	if ReasonSlots != 7 {
		t.Errorf("TP_REASON_SLOTS = %d, want 7", ReasonSlots)
	}
}

func TestVersionMatchesHeader(t *testing.T) {
	if errVersion != nil {
		t.Fatal(errVersion)
	}
	if Version() != headerVersionString {
		t.Errorf("Version() = %q, header says %q", Version(), headerVersionString)
	}
}
