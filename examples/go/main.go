// A first twistedpic program: a registry of two models on a simulated 12 GiB
// device, one acquired, its residency events and the model table printed.
package main

import (
	"fmt"
	"log"
	"os"
	"text/tabwriter"

	twistedpic "twistedpic.dev/twistedpic/bindings/go"
)

const config = `{
  "models": {
    "sd35_medium": {"model_id": "stabilityai/stable-diffusion-3.5-medium", "pipeline_type": "sd3",
                    "size_bytes": "5GiB", "dtype": "fp16"},
    "sd35_large":  {"model_id": "stabilityai/stable-diffusion-3.5-large", "pipeline_type": "sd3",
                    "size_bytes": "16GiB", "priority": 5}
  },
  "host_budget_bytes": "24GiB"
}`

func main() {
	fmt.Println("twistedpic", twistedpic.Version())
	reg, err := twistedpic.NewRegistryFromString(config, &twistedpic.Options{
		SimulatedDeviceBytes: 12 << 30, // no GPU needed: simulated device and weights
		Preset:               "max_gpu_availability",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	if _, err := reg.Subscribe(func(e twistedpic.Event) {
		fmt.Printf("event: %v (%d MiB in %v)\n", e, e.Bytes>>20, e.Duration)
	}); err != nil {
		log.Fatal(err)
	}

	lease, err := reg.Acquire("sd35_medium")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leased %s: %d MiB on the device\n", lease.Name(), lease.DeviceBytes()>>20)
	printModels(reg)
	lease.Release() // the preset moves it to the host now

	// 16 GiB cannot fit on a 12 GiB device: the error says why.
	if _, err := reg.Acquire("sd35_large"); twistedpic.IsResourceExhausted(err) {
		fmt.Println("as expected:", err)
	} else if err != nil {
		log.Fatal(err)
	}
	printModels(reg)
}

func printModels(reg *twistedpic.Registry) {
	models, err := reg.List()
	if err != nil {
		log.Fatal(err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tSTATE\tTIER\tDEVICE MiB\tHOST MiB\tLEASES\tLOADS")
	for _, m := range models {
		fmt.Fprintf(w, "%s\t%v\t%v\t%d\t%d\t%d\t%d\n", m.Name, m.State, m.Tier, m.DeviceBytes>>20, m.HostBytes>>20,
			m.Leases, m.LoadCount)
	}
	w.Flush()
}
