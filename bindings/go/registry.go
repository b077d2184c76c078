// Package twistedpic binds the twistedpic C ABI (tp.h): text-to-image
// generation (Registry.Pipeline, Pipeline.Generate) over a registry that loads
// diffusion models onto the GPU (or the CPU) on demand, leases them, offloads
// them to host memory or disk under memory policies, and reports events and
// statistics.
package twistedpic

import (
	"fmt"
	"runtime"
	"sync"
)

// errVersion is non-nil when the library loaded at run time is not the one
// whose header this package was compiled against.
var errVersion = checkVersion()

func checkVersion() error {
	if got := libraryVersionNumber(); got != headerVersionNumber {
		return &Error{Code: FailedPrecondition, Message: fmt.Sprintf(
			"libtwistedpic %s (%d) does not match the header %s (%d) this binding was built with",
			libraryVersionString(), got, headerVersionString, headerVersionNumber)}
	}
	return nil
}

// Version returns the loaded library's version, "MAJOR.MINOR.PATCH".
func Version() string { return libraryVersionString() }

// Options configure a new Registry. The zero value loads real weights onto
// the CUDA device, or onto the CPU where no GPU is usable.
type Options struct {
	// SimulatedDeviceBytes, when non-zero, runs on a simulated device of this
	// size with simulated weights (each model's config must give "size_bytes"):
	// for tests and demos of the registry. Simulated weights run no pipeline.
	SimulatedDeviceBytes uint64
	// SimulatedDevices, instead, are several named simulated devices, in
	// order: the registry spans them (a model's "device" names one, or
	// "auto"), with simulated weights. Not with SimulatedDeviceBytes
	// (FailedPrecondition); an empty or repeated name is InvalidArgument.
	SimulatedDevices []SimulatedDevice
	// Preset replaces the config's policy: "max_gpu_availability", "balanced"
	// or "max_speed".
	Preset string
	// BackgroundThread runs idle timeouts and pressure checks on a library
	// thread (nil: the default, true), or only in Registry.Tick (false).
	BackgroundThread *bool
	// TextEncoderOffload, when non-nil, is where the text encoders of pipeline
	// models go when their lease ends: TierHost frees the device for the
	// denoiser after encoding; TierDisk drops them. nil leaves it to the policy.
	TextEncoderOffload *Tier
	// Policy, when non-nil, is consulted before the built-in policies.
	Policy MemoryPolicy
}

// toC builds the C options; the caller destroys them.
func (o *Options) toC() (*cOptions, error) {
	c, err := optionsCreate()
	if err != nil {
		return nil, err
	}
	if err = o.apply(c); err != nil {
		optionsDestroy(c)
		return nil, err
	}
	return c, nil
}

func (o *Options) apply(c *cOptions) error {
	if o.SimulatedDeviceBytes != 0 {
		if err := optionsUseSimulatedDevice(c, o.SimulatedDeviceBytes); err != nil {
			return err
		}
	}
	for _, d := range o.SimulatedDevices {
		if err := optionsAddSimulatedDevice(c, d.Name, d.TotalBytes); err != nil {
			return err
		}
	}
	if o.Preset != "" {
		if err := optionsSetPreset(c, o.Preset); err != nil {
			return err
		}
	}
	if o.BackgroundThread != nil {
		if err := optionsSetBackgroundThread(c, *o.BackgroundThread); err != nil {
			return err
		}
	}
	if o.TextEncoderOffload != nil {
		if err := optionsSetTextEncoderOffload(c, *o.TextEncoderOffload); err != nil {
			return err
		}
	}
	if o.Policy != nil {
		// From here on C owns the entry: its destroy callback deletes it.
		h := handles.add(o.Policy)
		if err := optionsAddPolicy(c, h); err != nil {
			handles.del(h)
			return err
		}
	}
	return nil
}

// Registry loads models onto the device on demand and evicts them under the
// configured policies. It is safe for concurrent use. Close it when done; a
// finalizer closes one that is forgotten.
type Registry struct {
	mu  sync.RWMutex // held for writing by Close, for reading by every other call
	ptr *cRegistry   // nil once closed

	subsMu sync.Mutex
	subs   map[int]uintptr // subscription id -> handle of its func(Event)

	pipesMu sync.Mutex
	pipes   map[*cPipeline]struct{} // the open pipelines, destroyed by Close
}

// NewRegistryFromString creates a registry from a JSON config (named
// "<string>" in errors). opts may be nil.
func NewRegistryFromString(configJSON string, opts *Options) (*Registry, error) {
	return newRegistry(opts, func(o *cOptions) (*cRegistry, error) { return registryCreateFromString(configJSON, o) })
}

// NewRegistryFromFile creates a registry from a JSON config file. opts may be
// nil. A missing file is NotFound; a bad config is InvalidArgument, naming the
// file, the field and the problem.
func NewRegistryFromFile(path string, opts *Options) (*Registry, error) {
	return newRegistry(opts, func(o *cOptions) (*cRegistry, error) { return registryCreateFromFile(path, o) })
}

func newRegistry(opts *Options, create func(*cOptions) (*cRegistry, error)) (*Registry, error) {
	if errVersion != nil {
		return nil, errVersion
	}
	var c *cOptions
	if opts != nil {
		var err error
		if c, err = opts.toC(); err != nil {
			return nil, err
		}
		defer optionsDestroy(c) // destroys the policy too if no registry took it
	}
	ptr, err := create(c)
	if err != nil {
		return nil, err
	}
	r := &Registry{ptr: ptr, subs: map[int]uintptr{}, pipes: map[*cPipeline]struct{}{}}
	runtime.SetFinalizer(r, (*Registry).Close)
	return r, nil
}

// Close closes the registry's pipelines, destroys the registry and drops its
// event handlers. Live leases stay valid: the models they hold are freed when
// the last one is released. Close is idempotent; other calls on a closed
// registry or its pipelines fail with FailedPrecondition. It waits for calls
// in progress (Generate included), so a handler, policy or Progress must not
// call it.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr == nil {
		return nil
	}
	// tp.h: every pipeline goes before its registry. None is generating: each
	// Generate holds r.mu for reading.
	r.pipesMu.Lock()
	for p := range r.pipes {
		pipelineDestroy(p)
	}
	r.pipes = nil
	r.pipesMu.Unlock()
	registryDestroy(r.ptr)
	r.ptr = nil
	runtime.SetFinalizer(r, nil)
	r.subsMu.Lock()
	defer r.subsMu.Unlock()
	for _, h := range r.subs {
		handles.del(h)
	}
	r.subs = nil
	return nil
}

// with runs f on the live C registry, keeping r alive and open meanwhile.
func (r *Registry) with(f func(*cRegistry) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.ptr == nil {
		return &Error{Code: FailedPrecondition, Message: "the registry is closed"}
	}
	err := f(r.ptr)
	runtime.KeepAlive(r)
	return err
}

// List returns a snapshot of every configured model.
func (r *Registry) List() (models []ModelInfo, err error) {
	err = r.with(func(p *cRegistry) error { models, err = registryList(p); return err })
	return models, err
}

// Info returns one model's row, as List has it; NotFound for an unknown model.
func (r *Registry) Info(model string) (info ModelInfo, err error) {
	err = r.with(func(p *cRegistry) error { info, err = registryInfo(p, model); return err })
	return info, err
}

// Plan returns what acquiring model would do now (a dry run of its
// admission); NotFound for an unknown model.
func (r *Registry) Plan(model string) (plan Plan, err error) {
	err = r.with(func(p *cRegistry) error { plan, err = registryPlan(p, model); return err })
	return plan, err
}

// Pipeline returns a text-to-image pipeline of the configured model name (one
// with a pipeline_type). It loads no weights: each Generate leases the
// networks it needs. An unknown model is NotFound; a model that is not a
// pipeline is InvalidArgument; an unsupported pipeline type is Unimplemented.
func (r *Registry) Pipeline(name string) (*Pipeline, error) {
	var pl *Pipeline
	err := r.with(func(p *cRegistry) error {
		ptr, err := pipelineCreate(p, name)
		if err != nil {
			return err
		}
		r.pipesMu.Lock()
		r.pipes[ptr] = struct{}{}
		r.pipesMu.Unlock()
		pl = &Pipeline{reg: r, ptr: ptr, name: pipelineName(ptr), typ: pipelineType(ptr)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	runtime.SetFinalizer(pl, (*Pipeline).Close)
	return pl, nil
}

// Acquire leases model, loading it first when needed; concurrent acquires
// share one load. While the lease lives the model stays on the device.
// Unknown models are NotFound; one that cannot fit is ResourceExhausted.
func (r *Registry) Acquire(model string) (*Lease, error) {
	var ptr *cLease
	err := r.with(func(p *cRegistry) (err error) { ptr, err = modelAcquire(p, model); return err })
	if err != nil {
		return nil, err
	}
	l := &Lease{ptr: ptr}
	runtime.SetFinalizer(l, (*Lease).Release)
	return l, nil
}

// Preload loads model without taking a lease.
func (r *Registry) Preload(model string) error {
	return r.with(func(p *cRegistry) error { return registryPreload(p, model) })
}

// Unload moves model off the device to tier (TierHost or TierDisk) and
// returns the device bytes measured as returned. A leased model is
// FailedPrecondition.
func (r *Registry) Unload(model string, tier Tier) (bytesReturned int64, err error) {
	err = r.with(func(p *cRegistry) error { bytesReturned, err = registryUnload(p, model, tier); return err })
	return bytesReturned, err
}

// UnloadAll unloads every unleased model to tier; FailedPrecondition names
// those still leased.
func (r *Registry) UnloadAll(tier Tier) error {
	return r.with(func(p *cRegistry) error { return registryUnloadAll(p, tier) })
}

// Tick applies idle timeouts, pressure and LRU limits now.
func (r *Registry) Tick() error {
	return r.with(registryTick)
}

// Stats returns the registry's counters.
func (r *Registry) Stats() (s Stats, err error) {
	err = r.with(func(p *cRegistry) error { s, err = registryStats(p); return err })
	return s, err
}

// Subscribe calls fn for every residency transition, on the goroutine or
// library thread that made it, possibly concurrently. It returns an id for
// Unsubscribe. A panic in fn is recovered and logged.
func (r *Registry) Subscribe(fn func(Event)) (id int, err error) {
	if fn == nil {
		return 0, &Error{Code: InvalidArgument, Message: "fn must not be nil"}
	}
	h := handles.add(fn)
	err = r.with(func(p *cRegistry) error {
		if id, err = registrySubscribe(p, h); err != nil {
			return err
		}
		r.subsMu.Lock()
		defer r.subsMu.Unlock()
		r.subs[id] = h
		return nil
	})
	if err != nil {
		handles.del(h)
	}
	return id, err
}

// Unsubscribe stops the handler id; one already running may finish.
func (r *Registry) Unsubscribe(id int) error {
	return r.with(func(p *cRegistry) error {
		if err := registryUnsubscribe(p, id); err != nil {
			return err
		}
		r.subsMu.Lock()
		defer r.subsMu.Unlock()
		handles.del(r.subs[id])
		delete(r.subs, id)
		return nil
	})
}

// Lease keeps a model on the device until Release. It may be read from
// several goroutines; a finalizer releases one that is forgotten.
type Lease struct {
	mu  sync.RWMutex
	ptr *cLease // nil once released
}

// Release returns the lease; the memory policies apply now. Idempotent.
func (l *Lease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr != nil {
		modelRelease(l.ptr)
		l.ptr = nil
		runtime.SetFinalizer(l, nil)
	}
}

// with runs f on the C lease (nil once released: the C getters accept NULL).
func (l *Lease) with(f func(*cLease)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f(l.ptr)
	runtime.KeepAlive(l)
}

// Name returns the leased model's name; "" after Release.
func (l *Lease) Name() (name string) {
	l.with(func(p *cLease) { name = modelName(p) })
	return name
}

// DeviceBytes returns the device bytes the model holds; 0 after Release.
func (l *Lease) DeviceBytes() (n uint64) {
	l.with(func(p *cLease) { n = modelDeviceBytes(p) })
	return n
}
