package twistedpic

import "testing"

// The layouts tp.h documents (tests/capi/abi_test.c): v0.1 and v0.2 structs,
// x86-64 and aarch64 Linux.
func TestABILayout(t *testing.T) {
	want := map[string]uintptr{
		"sizeof(tp_policy_model)":                   56,
		"sizeof(tp_memory_policy_vtable)":           40,
		"sizeof(tp_model_info)":                     128,
		"sizeof(tp_stats)":                          200,
		"sizeof(tp_event)":                          64,
		"offsetof(tp_policy_model.idle_seconds)":    48,
		"offsetof(tp_memory_policy_vtable.destroy)": 24,
		"offsetof(tp_memory_policy_vtable.rank_victims)": 32,
		"offsetof(tp_model_info.last_error)":        112,
		"offsetof(tp_model_info.device)":            120,
		"sizeof(tp_device_info)":                    112,
		"offsetof(tp_device_info.scratch_bytes)":    88,
		"offsetof(tp_device_info.resident_models)":  104,
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

// Every constant table (codes, tiers, states, reasons, stages) has tp.h's
// values (cgo takes them from the header; this pins them to the documented,
// never-renumbered values) and the library's names for them.
func TestConstantsMatchTheHeaderAndTheLibrary(t *testing.T) {
	codes := []struct {
		c    Code
		v    int
		name string
	}{
		{OK, 0, "OK"}, {Cancelled, 1, "CANCELLED"}, {Unknown, 2, "UNKNOWN"},
		{InvalidArgument, 3, "INVALID_ARGUMENT"}, {NotFound, 5, "NOT_FOUND"},
		{AlreadyExists, 6, "ALREADY_EXISTS"}, {ResourceExhausted, 8, "RESOURCE_EXHAUSTED"},
		{FailedPrecondition, 9, "FAILED_PRECONDITION"}, {Aborted, 10, "ABORTED"},
		{Unimplemented, 12, "UNIMPLEMENTED"}, {Internal, 13, "INTERNAL"},
		{Unavailable, 14, "UNAVAILABLE"}, {DataLoss, 15, "DATA_LOSS"},
	}
	for _, c := range codes {
		if int(c.c) != c.v || c.c.String() != c.name {
			t.Errorf("code %s = %d, want %s = %d", c.c, int(c.c), c.name, c.v)
		}
	}
	tiers := []struct {
		t    Tier
		v    int
		name string
	}{{TierDevice, 0, "device"}, {TierHost, 1, "host"}, {TierDisk, 2, "disk"}}
	for _, x := range tiers {
		if int(x.t) != x.v || x.t.String() != x.name {
			t.Errorf("tier %s = %d, want %s = %d", x.t, int(x.t), x.name, x.v)
		}
	}
	states := []struct {
		s    State
		v    int
		name string
	}{
		{StateUnloaded, 0, "unloaded"}, {StateLoading, 1, "loading"}, {StateResident, 2, "resident"},
		{StateOffloaded, 3, "offloaded"}, {StateUnloading, 4, "unloading"}, {StateFailed, 5, "failed"},
	}
	for _, x := range states {
		if int(x.s) != x.v || x.s.String() != x.name {
			t.Errorf("state %s = %d, want %s = %d", x.s, int(x.s), x.name, x.v)
		}
	}
	reasons := []struct {
		r    Reason
		v    int
		name string
	}{
		{ReasonLazy, 0, "lazy"}, {ReasonEager, 1, "eager"}, {ReasonTTL, 2, "ttl"}, {ReasonLRU, 3, "lru"},
		{ReasonPressure, 4, "pressure"}, {ReasonExplicit, 5, "explicit"}, {ReasonUnloadAfter, 6, "unload-after"},
	}
	for _, x := range reasons {
		if int(x.r) != x.v || x.r.String() != x.name {
			t.Errorf("reason %s = %d, want %s = %d", x.r, int(x.r), x.name, x.v)
		}
	}
	stages := []struct {
		s Stage
		v int
	}{{StageEncode, 0}, {StageDenoise, 1}, {StageDecode, 2}, {StageWaiting, 3}}
	for _, x := range stages {
		if int(x.s) != x.v {
			t.Errorf("stage %v = %d, want %d", x.s, int(x.s), x.v)
		}
	}
}
