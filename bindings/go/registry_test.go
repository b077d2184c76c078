package twistedpic

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const gib = uint64(1) << 30

const testConfig = `{
  "models": {
    "a": {"model_id": "org/a", "pipeline_type": "sd3", "size_bytes": "4GiB", "dtype": "fp16"},
    "b": {"path": "/models/b", "pipeline_type": "sd3", "size_bytes": "4GiB", "priority": 3},
    "c": {"path": "/models/c", "pipeline_type": "sd3", "size_bytes": "4GiB"}
  },
  "host_budget_bytes": "16GiB"
}`

// newTestRegistry creates a registry of testConfig on a simulated device (10
// GiB unless opts says otherwise) without a background thread, closed at the
// end of the test.
func newTestRegistry(t *testing.T, opts Options) *Registry {
	t.Helper()
	if opts.SimulatedDeviceBytes == 0 {
		opts.SimulatedDeviceBytes = 10 * gib
	}
	off := false
	opts.BackgroundThread = &off
	r, err := NewRegistryFromString(testConfig, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// must returns v, panicking (which fails the test) on an unexpected error.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func errOf[T any](_ T, err error) error { return err }

func row(t *testing.T, r *Registry, name string) ModelInfo {
	t.Helper()
	for _, m := range must(r.List()) {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no model %q", name)
	return ModelInfo{}
}

// acquireRelease takes and returns a lease on each model in turn.
func acquireRelease(t *testing.T, r *Registry, models ...string) {
	t.Helper()
	for _, m := range models {
		must(r.Acquire(m)).Release()
	}
}

func TestLifecycle(t *testing.T) {
	r := newTestRegistry(t, Options{})
	list := must(r.List())
	if len(list) != 3 {
		t.Fatalf("List() has %d models, want 3", len(list))
	}
	want := ModelInfo{Name: "a", Source: "org/a", PipelineType: "sd3", DType: "fp16", State: StateUnloaded,
		Tier: TierDisk, LastUseAge: -time.Second, ExpiresIn: -time.Second, Device: "simulated"}
	if list[0] != want {
		t.Errorf("List()[0] = %+v\nwant %+v", list[0], want)
	}
	if b := list[1]; b.Source != "/models/b" || b.Priority != 3 || b.DType != "bf16" {
		t.Errorf("List()[1] = %+v", b)
	}

	l := must(r.Acquire("a"))
	if l.Name() != "a" || l.DeviceBytes() != 4*gib {
		t.Errorf("lease: %q, %d bytes", l.Name(), l.DeviceBytes())
	}
	a := row(t, r, "a")
	if a.State != StateResident || a.Tier != TierDevice || a.Leases != 1 || a.DeviceBytes != 4*gib ||
		a.LoadCount != 1 || a.LastUseAge < 0 {
		t.Errorf("after acquire: %+v", a)
	}
	l.Release()
	l.Release() // idempotent
	if l.Name() != "" {
		t.Errorf("released lease still names %q", l.Name())
	}

	if n := must(r.Unload("a", TierHost)); n != int64(4*gib) {
		t.Errorf("Unload to host returned %d bytes", n)
	}
	if a := row(t, r, "a"); a.State != StateOffloaded || a.Tier != TierHost || a.HostBytes != 4*gib {
		t.Errorf("after unload to host: %+v", a)
	}
	if err := r.Preload("a"); err != nil {
		t.Fatal(err)
	}
	if err := r.UnloadAll(TierDisk); err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(); err != nil {
		t.Fatal(err)
	}
	if a := row(t, r, "a"); a.State != StateUnloaded || a.HostBytes != 0 {
		t.Errorf("after UnloadAll(TierDisk): %+v", a)
	}

	s := must(r.Stats())
	if s.Loads != 1 || s.Reloads != 1 || s.Misses != 1 || s.Evictions[ReasonExplicit] != 2 ||
		s.PeakDeviceBytes != 4*gib || s.DeviceBytes != 0 || s.HostBytes != 0 {
		t.Errorf("Stats() = %+v", s)
	}
}

func TestEventsFollowThePreset(t *testing.T) {
	r := newTestRegistry(t, Options{Preset: "max_gpu_availability"})
	before := handles.len()
	var mu sync.Mutex
	var seen []Event
	id := must(r.Subscribe(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
	}))
	acquireRelease(t, r, "b")
	if err := r.Unsubscribe(id); err != nil {
		t.Fatal(err)
	}
	if handles.len() != before {
		t.Errorf("Unsubscribe left %d handles, want %d", handles.len(), before)
	}
	acquireRelease(t, r, "b") // not seen

	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range seen {
		got = append(got, e.String())
	}
	if want := []string{"b:disk->device:lazy", "b:device->host:unload-after"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if seen[0].Bytes != 4*gib || seen[0].Failed || seen[1].BytesReturned != int64(4*gib) {
		t.Errorf("events %+v", seen)
	}

	// Close drops the handlers still subscribed.
	must(r.Subscribe(func(Event) {}))
	r.Close()
	if handles.len() != before {
		t.Errorf("Close left %d handles, want %d", handles.len(), before)
	}
}

func TestErrors(t *testing.T) {
	// admission_timeout_ms 0: "b" fails at once instead of waiting for a's lease to end.
	noWait := strings.Replace(testConfig, `"host_budget_bytes"`, `"admission_timeout_ms": 0, "host_budget_bytes"`, 1)
	off := false
	r := must(NewRegistryFromString(noWait, &Options{SimulatedDeviceBytes: 6 * gib, BackgroundThread: &off}))
	t.Cleanup(func() { r.Close() })
	l := must(r.Acquire("a"))
	defer l.Release()
	closed := newTestRegistry(t, Options{})
	closed.Close()
	sim := &Options{SimulatedDeviceBytes: gib}

	for _, c := range []struct {
		name string
		err  error
		code Code
		msg  string
	}{
		{"unknown model", errOf(r.Acquire("zz")), NotFound, "model 'zz' is not configured (configured: a, b, c)"},
		{"too small device", errOf(r.Acquire("b")), ResourceExhausted, "cannot load 'b': needs 4.00 GiB"},
		{"unload a leased model", errOf(r.Unload("a", TierHost)), FailedPrecondition, "live lease"},
		{"unload to the device", errOf(r.Unload("c", TierDevice)), InvalidArgument, "tier must be"},
		{"bad config", errOf(NewRegistryFromString(`{"models": {"a": {"path": "/x", "dtype": "fp8"}}}`, sim)),
			InvalidArgument, "<string>: models.a.dtype: unknown dtype 'fp8'"},
		{"missing file", errOf(NewRegistryFromFile("/nonexistent/tp.json", sim)), NotFound, "/nonexistent/tp.json"},
		{"bad preset", errOf(NewRegistryFromString(testConfig, &Options{Preset: "warp"})),
			InvalidArgument, "unknown preset 'warp'"},
		// Real weights (the CUDA or the CPU device): the library reads the folders at creation.
		{"no weights on disk", errOf(NewRegistryFromString(`{"models": {"b": {"path": "/models/b"}}}`, nil)),
			NotFound, "model 'b': model folder '/models/b' does not exist"},
		{"not in the HF cache", errOf(NewRegistryFromString(testConfig, nil)),
			NotFound, "model 'a': model 'org/a' is not in the Hugging Face cache"},
		{"closed registry", errOf(closed.List()), FailedPrecondition, "closed"},
		{"nil handler", errOf(r.Subscribe(nil)), InvalidArgument, "nil"},
	} {
		var e *Error
		if !errors.As(c.err, &e) || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: got %v, want %v containing %q", c.name, c.err, c.code, c.msg)
		} else if !strings.Contains(c.err.Error(), c.code.String()) {
			t.Errorf("%s: %q does not name %s", c.name, c.err, c.code)
		}
	}
	if wrapped := fmt.Errorf("ctx: %w", errOf(r.Acquire("zz"))); !IsNotFound(wrapped) || IsInvalidArgument(wrapped) {
		t.Errorf("CodeOf(%v) = %v", wrapped, CodeOf(wrapped))
	}
	if CodeOf(nil) != OK || CodeOf(errors.New("x")) != Unknown {
		t.Error("CodeOf of nil or a foreign error")
	}
	// The failures left the registry working.
	l.Release()
	acquireRelease(t, r, "b")
}

// lastEvictable picks the last evictable model and records its calls.
type lastEvictable struct {
	mu       sync.Mutex
	selects  [][]PolicyModel
	accesses []string
}

func (p *lastEvictable) SelectVictims(models []PolicyModel, needBytes uint64) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.selects = append(p.selects, models)
	for i := len(models) - 1; i >= 0; i-- {
		if models[i].Evictable {
			return []int{len(models), -1, i} // the bad indices are dropped
		}
	}
	return nil
}

func (p *lastEvictable) OnAccess(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accesses = append(p.accesses, name)
}

func TestGoMemoryPolicy(t *testing.T) {
	before := handles.len()
	p := &lastEvictable{}
	r := newTestRegistry(t, Options{Policy: p})
	if handles.len() != before+1 {
		t.Fatalf("%d handles, want %d", handles.len(), before+1)
	}
	acquireRelease(t, r, "a", "b", "c") // c needs room: the built-in LRU would pick a, the policy picks b

	p.mu.Lock()
	if len(p.selects) != 1 || !reflect.DeepEqual(p.accesses, []string{"a", "b", "c"}) {
		t.Errorf("policy saw %d selects, accesses %q", len(p.selects), p.accesses)
	} else if m := p.selects[0][1]; m.Name != "b" || !m.Evictable || m.DeviceBytes != 4*gib || m.Priority != 3 ||
		m.State != StateResident || m.Idle < 0 {
		t.Errorf("policy saw b as %+v", m)
	}
	p.mu.Unlock()
	if b, a := row(t, r, "b"), row(t, r, "a"); b.State != StateOffloaded || a.State != StateResident {
		t.Errorf("b %v, a %v: the policy's victim was not evicted", b.State, a.State)
	}
	r.Close()
	if handles.len() != before {
		t.Errorf("Close left %d handles, want %d (the policy's destroy did not run)", handles.len(), before)
	}

	// A registry that fails to be created destroys the policy too.
	_, err := NewRegistryFromString(`{"models": 1}`, &Options{SimulatedDeviceBytes: gib, Policy: p})
	if !IsInvalidArgument(err) || handles.len() != before {
		t.Errorf("failed create: %v, %d handles, want %d", err, handles.len(), before)
	}
}

type panickingPolicy struct{}

func (panickingPolicy) SelectVictims([]PolicyModel, uint64) []int { panic("select") }
func (panickingPolicy) OnAccess(string)                           { panic("access") }

func TestPanicsDoNotReachC(t *testing.T) {
	var logged bytes.Buffer
	defer log.SetOutput(log.Writer())
	log.SetOutput(&logged)
	r := newTestRegistry(t, Options{Policy: panickingPolicy{}})
	must(r.Subscribe(func(Event) { panic("event") }))
	var n int
	must(r.Subscribe(func(Event) { n++ }))
	acquireRelease(t, r, "a", "b", "c") // the built-ins decide instead of the policy
	if n != 4 {
		t.Errorf("the other handler saw %d events, want 4 (3 loads, 1 eviction)", n)
	}
	for _, what := range []string{"event handler: event", "MemoryPolicy.SelectVictims: select", "MemoryPolicy.OnAccess: access"} {
		if !strings.Contains(logged.String(), "recovered panic in "+what) {
			t.Errorf("no logged panic %q in:\n%s", what, logged.String())
		}
	}
}

func TestCloseWithLiveLeaseIsDeferred(t *testing.T) {
	before := handles.len()
	r := newTestRegistry(t, Options{Policy: &lastEvictable{}})
	l := must(r.Acquire("a"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Name() != "a" || l.DeviceBytes() != 4*gib {
		t.Errorf("lease after Close: %q, %d bytes", l.Name(), l.DeviceBytes())
	}
	if _, err := r.Acquire("a"); !IsFailedPrecondition(err) {
		t.Errorf("Acquire after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l.Release()
	if handles.len() != before {
		t.Errorf("%d handles after the last release, want %d", handles.len(), before)
	}
}

func TestConcurrentAcquireRelease(t *testing.T) {
	r := newTestRegistry(t, Options{})
	const goroutines, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				name := []string{"a", "b"}[(g+i)%2]
				l, err := r.Acquire(name)
				if err == nil && l.Name() != name {
					err = fmt.Errorf("lease on %q names %q", name, l.Name())
				}
				if err != nil {
					errs <- err
					return
				}
				l.Release()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := must(r.Stats())
	if s.Hits+s.Misses != goroutines*rounds || s.Loads != 2 {
		t.Errorf("%d hits + %d misses, %d loads; want %d acquires, 2 loads", s.Hits, s.Misses, s.Loads, goroutines*rounds)
	}
	for _, m := range must(r.List()) {
		if m.Leases != 0 {
			t.Errorf("%s keeps %d leases", m.Name, m.Leases)
		}
	}
}

func TestFinalizerReleasesAForgottenLease(t *testing.T) {
	r := newTestRegistry(t, Options{})
	func() { must(r.Acquire("a")) }()
	for deadline := time.Now().Add(5 * time.Second); row(t, r, "a").Leases != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the forgotten lease was never released")
		}
		runtime.GC()
	}
}
