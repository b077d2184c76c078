// A first twistedpic program, in two parts:
//
//  1. a registry of two models on a simulated 12 GiB device, one acquired,
//     its residency events and the model table printed;
//  2. a picture from the shipped default model (models/tiny-sd3), with
//     progress, saved as a PNG. Ctrl-C cancels it through the context.
//
// Usage: go run . [MODEL_DIR] [OUT.png]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
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

	modelDir, out := defaultModelDir(), filepath.Join(os.TempDir(), "twistedpic-go-example.png")
	if len(os.Args) > 1 {
		modelDir = os.Args[1]
	}
	if len(os.Args) > 2 {
		out = os.Args[2]
	}
	generate(modelDir, out)
}

// generate makes one picture with the model in modelDir and saves it to out.
func generate(modelDir, out string) {
	fmt.Println("\ngenerating with", modelDir)
	config := fmt.Sprintf(`{"models": {"tiny": {"path": %q, "pipeline_type": "sd3", "dtype": "fp32"}}}`, modelDir)
	reg, err := twistedpic.NewRegistryFromString(config, nil) // real weights: the GPU, else the CPU
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	pipeline, err := reg.Pipeline("tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer pipeline.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	images, err := pipeline.Generate(ctx, twistedpic.Request{
		Prompts: []string{"a red circle on a white background"},
		Seed:    5,
		Progress: func(p twistedpic.Progress) bool {
			switch p.Stage {
			case twistedpic.StageWaiting:
				fmt.Fprintln(os.Stderr, "  loading", p.Model)
			case twistedpic.StageDenoise:
				fmt.Fprintf(os.Stderr, "\r  step %d/%d", p.Step, p.Steps)
			case twistedpic.StageDecode:
				fmt.Fprintln(os.Stderr, "\n  decoding")
			}
			return true // false would cancel
		},
	})
	if twistedpic.IsCancelled(err) {
		log.Fatal("cancelled: ", err)
	} else if err != nil {
		log.Fatal(err)
	}
	img := images[0] // an image.Image: image/png could encode it too
	if err := img.Save(out); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %s (%dx%d)\n", out, img.Width(), img.Height())
}

// defaultModelDir is models/tiny-sd3 of the source tree this file is in.
func defaultModelDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "models", "tiny-sd3")
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
