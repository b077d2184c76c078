package twistedpic

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// Three models on two named simulated devices.
const twoDevicesConfig = `{
  "models": {
    "a": {"path": "/models/a", "size_bytes": "4GiB", "device": "sim:1"},
    "b": {"path": "/models/b", "size_bytes": "2GiB", "device": "sim:0"},
    "c": {"path": "/models/c", "size_bytes": "1GiB", "device": "sim:1"}
  },
  "admission_timeout_ms": 0
}`

func newTwoDeviceRegistry(t *testing.T) *Registry {
	t.Helper()
	off := false
	r, err := NewRegistryFromString(twoDevicesConfig, &Options{
		SimulatedDevices: []SimulatedDevice{{"sim:0", 8 * gib}, {"sim:1", 16 * gib}},
		BackgroundThread: &off,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestDevicesAreListedInOrderWithWhatTheyHold(t *testing.T) {
	r := newTwoDeviceRegistry(t)
	d, err := r.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0].Name != "sim:0" || d[1].Name != "sim:1" {
		t.Fatalf("devices %+v, want sim:0 then sim:1", d)
	}
	if d[0].TotalBytes != 8*gib || d[1].TotalBytes != 16*gib || d[0].HeldBytes+d[1].HeldBytes != 0 {
		t.Errorf("devices %+v", d)
	}
	rows, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	var placed []string
	for _, m := range rows {
		placed = append(placed, m.Device)
	}
	if !reflect.DeepEqual(placed, []string{"sim:1", "sim:0", "sim:1"}) {
		t.Errorf("model devices %v", placed)
	}
	var leases []*Lease
	for _, m := range []string{"a", "b", "c"} {
		l, err := r.Acquire(m)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	d, err = r.Devices()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(d[0].HeldBytes, d[0].ResidentModels, d[0].FreeBytes, d[1].HeldBytes, d[1].ResidentModels, d[1].FreeBytes)
	want := fmt.Sprint(2*gib, 1, 6*gib, 5*gib, 2, 11*gib)
	if got != want {
		t.Errorf("held, resident, free per device: %s, want %s", got, want)
	}
	for _, l := range leases {
		l.Release()
	}
	if info, err := r.Info("a"); err != nil || info.Device != "sim:1" {
		t.Errorf("Info(a) = %+v, %v", info, err)
	}
}

func TestOneSimulatedDeviceIsListed(t *testing.T) {
	r := newTestRegistry(t, Options{SimulatedDeviceBytes: 4 * gib})
	d, err := r.Devices()
	if err != nil || len(d) != 1 || d[0].TotalBytes != 4*gib || d[0].Name == "" {
		t.Fatalf("Devices() = %+v, %v", d, err)
	}
	if info, err := r.Info("a"); err != nil || info.Device != d[0].Name {
		t.Errorf("Info(a) = %+v, %v; want device %q", info, err, d[0].Name)
	}
}

func TestBadSimulatedDevicesAreRefused(t *testing.T) {
	_, err := NewRegistryFromString(twoDevicesConfig, &Options{SimulatedDevices: []SimulatedDevice{{"x", gib}, {"x", gib}}})
	var e *Error
	if !errors.As(err, &e) || e.Code != InvalidArgument {
		t.Errorf("a repeated name: %v", err)
	}
	_, err = NewRegistryFromString(twoDevicesConfig, &Options{SimulatedDeviceBytes: gib, SimulatedDevices: []SimulatedDevice{{"x", gib}}})
	if !errors.As(err, &e) || e.Code != FailedPrecondition {
		t.Errorf("both kinds: %v", err)
	}
}

func TestRuntimeDevicesAreTheCudaDevicesOrTheCPU(t *testing.T) {
	d, err := RuntimeDevices()
	if err != nil || len(d) == 0 {
		t.Fatalf("RuntimeDevices() = %v, %v", d, err)
	}
	for i, x := range d {
		if !(len(d) == 1 && x.Name == "cpu") && x.Name != fmt.Sprintf("cuda:%d", i) {
			t.Errorf("device %d is %q", i, x.Name)
		}
		if x.TotalBytes == 0 || x.FreeBytes > x.TotalBytes || x.HeldBytes != 0 {
			t.Errorf("device %+v", x)
		}
	}
}
