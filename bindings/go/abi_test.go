package twistedpic

import "testing"

// The layouts tp.h documents for v0.1 (x86-64 and aarch64 Linux).
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
	}
	if len(cLayout) != len(want) {
		t.Errorf("cLayout has %d entries, want %d", len(cLayout), len(want))
	}
	for k, v := range want {
		if got, ok := cLayout[k]; !ok || got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
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
