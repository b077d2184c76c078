package twistedpic

// Devices: a registry's (Registry.Devices) and the runtime's (RuntimeDevices),
// through tp_registry_devices / tp_runtime_devices and tp_device_list.

/*
#include <stdlib.h>
#include "twistedpic/tp.h"
*/
import "C"

import "unsafe"

// Device is one device (tp_device_info). Registry.Devices fills every field;
// RuntimeDevices only Name, TotalBytes and FreeBytes (the others are 0).
type Device struct {
	Name                  string // "cuda:0", "cpu", a simulated device's name
	TotalBytes, FreeBytes uint64 // as its monitor reports them (0: unknown)
	ProcessBytes          uint64 // this process's, per the driver (NVML)
	OtherProcessBytes     uint64 // every other process's
	HeadroomBytes         uint64 // kept free for others by the policy
	BudgetBytes           uint64 // the registry's budget on it; 0: as much as is free
	HeldBytes, PeakBytes  uint64 // model weights the registry holds on it now, and at most
	ReservedBytes         uint64 // admitted loads in flight (weights + workspace)
	ScratchBytes          uint64 // the weight engine's scratch pool on it
	AdmissionQueue        uint64 // loads waiting for its memory
	ResidentModels        uint32
}

// SimulatedDevice names one device of Options.SimulatedDevices.
type SimulatedDevice struct {
	Name       string
	TotalBytes uint64
}

func optionsAddSimulatedDevice(o *cOptions, name string, totalBytes uint64) error {
	s := C.CString(name)
	defer C.free(unsafe.Pointer(s))
	return call(func(e **C.tp_error) C.tp_code {
		return C.tp_registry_options_add_simulated_device(o, s, C.uint64_t(totalBytes), e)
	})
}

func registryDevices(r *cRegistry) ([]Device, error) {
	var list *C.tp_device_list
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_registry_devices(&list, r, e) }); err != nil {
		return nil, err
	}
	return deviceListRows(list)
}

// RuntimeDevices returns the devices a registry without a simulated device
// uses now: every visible CUDA device ("cuda:N", with the driver's total and
// free bytes), or the CPU device alone ("cpu") where no GPU is usable.
func RuntimeDevices() ([]Device, error) {
	var list *C.tp_device_list
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_runtime_devices(&list, e) }); err != nil {
		return nil, err
	}
	return deviceListRows(list)
}

// deviceListRows copies list's rows and frees it.
func deviceListRows(list *C.tp_device_list) ([]Device, error) {
	defer C.tp_device_list_free(list)
	n := C.tp_device_list_count(list)
	out := make([]Device, 0, n)
	for i := C.uint32_t(0); i < n; i++ {
		var c C.tp_device_info
		c.struct_size = C.uint32_t(unsafe.Sizeof(c))
		if err := call(func(e **C.tp_error) C.tp_code { return C.tp_device_list_get(&c, list, i, e) }); err != nil {
			return nil, err
		}
		out = append(out, Device{
			Name:              C.GoString(c.name),
			TotalBytes:        uint64(c.total_bytes),
			FreeBytes:         uint64(c.free_bytes),
			ProcessBytes:      uint64(c.process_bytes),
			OtherProcessBytes: uint64(c.other_process_bytes),
			HeadroomBytes:     uint64(c.headroom_bytes),
			BudgetBytes:       uint64(c.budget_bytes),
			HeldBytes:         uint64(c.held_bytes),
			PeakBytes:         uint64(c.peak_bytes),
			ReservedBytes:     uint64(c.reserved_bytes),
			ScratchBytes:      uint64(c.scratch_bytes),
			AdmissionQueue:    uint64(c.admission_queue),
			ResidentModels:    uint32(c.resident_models),
		})
	}
	return out, nil
}

// Devices returns a snapshot of the registry's devices, in the order it was
// given them (cuda:0, cuda:1, ...; the CPU device alone; or
// Options.SimulatedDevices, in order).
func (r *Registry) Devices() (devices []Device, err error) {
	err = r.with(func(p *cRegistry) error { devices, err = registryDevices(p); return err })
	return devices, err
}
