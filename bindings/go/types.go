package twistedpic

/*
#include "twistedpic/tp.h"
*/
import "C"

import (
	"fmt"
	"time"
)

// Tier is where a model's weights live.
type Tier int32

const (
	TierDevice Tier = C.TP_TIER_DEVICE
	TierHost   Tier = C.TP_TIER_HOST // a pinned host copy: a fast reload
	TierDisk   Tier = C.TP_TIER_DISK // nothing kept: a full reload
)

func (t Tier) String() string { return tierName(t) }

// State is a model's residency state.
type State int32

const (
	StateUnloaded  State = C.TP_STATE_UNLOADED
	StateLoading   State = C.TP_STATE_LOADING
	StateResident  State = C.TP_STATE_RESIDENT
	StateOffloaded State = C.TP_STATE_OFFLOADED
	StateUnloading State = C.TP_STATE_UNLOADING
	StateFailed    State = C.TP_STATE_FAILED
)

func (s State) String() string { return stateName(s) }

// Reason is why a model moved between tiers.
type Reason int32

const (
	ReasonLazy        Reason = C.TP_REASON_LAZY
	ReasonEager       Reason = C.TP_REASON_EAGER
	ReasonTTL         Reason = C.TP_REASON_TTL
	ReasonLRU         Reason = C.TP_REASON_LRU
	ReasonPressure    Reason = C.TP_REASON_PRESSURE
	ReasonExplicit    Reason = C.TP_REASON_EXPLICIT
	ReasonUnloadAfter Reason = C.TP_REASON_UNLOAD_AFTER
	// ReasonSlots is the number of reasons, the length of Stats.Evictions.
	ReasonSlots = C.TP_REASON_SLOTS
)

func (r Reason) String() string { return reasonName(r) }

// ModelInfo is one row of Registry.List: a model's config and residency.
type ModelInfo struct {
	Name, Source, PipelineType string
	DType                      string // "fp32" | "fp16" | "bf16"
	State                      State
	Tier                       Tier
	DeviceBytes, HostBytes     uint64
	Leases                     uint32
	Pinned                     bool
	Priority                   int32
	LastUseAge                 time.Duration // negative: never used
	ExpiresIn                  time.Duration // until an idle timeout unloads it; negative: none running
	LoadCount                  uint64
	LastLoad                   time.Duration // how long the last load took
	LastError                  string        // "" unless the last load failed
	Device                     string        // the registry device it is on or goes to ("cuda:1"); "auto" before placed
}

// Stats are a registry's counters since creation.
type Stats struct {
	Hits, Misses, Loads, Reloads, LoadFailures uint64
	AdmissionWaits, AdmissionFailures          uint64
	Evictions                                  [ReasonSlots]uint64 // indexed by Reason
	BytesToDevice, BytesToHost, BytesReturned  uint64
	DeviceBytes, PeakDeviceBytes, HostBytes    uint64
	LoadP50, LoadP95, ReloadP50, ReloadP95     time.Duration
}

// Event is one residency transition, delivered to Subscribe's handlers.
type Event struct {
	Model         string
	From, To      Tier
	Reason        Reason
	Failed        bool // a failed load; Error says why
	Bytes         uint64
	Duration      time.Duration
	BytesReturned int64 // device bytes measured as returned to the driver
	Error         string
}

// String formats the event as "model:from->to:reason".
func (e Event) String() string {
	s := fmt.Sprintf("%s:%s->%s:%s", e.Model, e.From, e.To, e.Reason)
	if e.Failed {
		s += ": " + e.Error
	}
	return s
}

// PolicyModel is one model as a MemoryPolicy sees it.
type PolicyModel struct {
	Name                   string
	State                  State
	Tier                   Tier
	DeviceBytes, HostBytes uint64
	Leases                 uint32
	Pinned                 bool
	Priority               int32
	Evictable              bool          // resident, unleased, unpinned: accepted as a victim
	Idle                   time.Duration // since the last acquire or release; negative: never used
}

// MemoryPolicy is a memory policy written in Go, consulted before the
// registry's built-in policies (Options.Policy).
//
// Its methods run with the registry's lock held, on any goroutine or library
// thread, one at a time: they must be quick and must not call the Registry. A
// panic is recovered, logged, and counts as "no opinion".
type MemoryPolicy interface {
	// SelectVictims returns indices into models to move to the host tier to
	// free at least needBytes on the device, cheapest first; none leaves the
	// choice to the built-ins. Indices out of range are ignored.
	SelectVictims(models []PolicyModel, needBytes uint64) []int
	// OnAccess is called after every successful acquire.
	OnAccess(name string)
}
