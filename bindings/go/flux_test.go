package twistedpic

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Flux through the Go binding, on the tiny dev-style pipeline of
// scripts/flux_reference.py (ctest sets TP_FLUX_DEV_DIR from the
// pipeline.flux_reference fixture): the family is detected from
// model_index.json, the image equals the CLI's to the byte, and true CFG goes
// through the generic request option.
func TestFluxEqualsTheCLIAndTakesTrueCFGAsAnOption(t *testing.T) {
	const prompt = "a red circle on a white background"
	dev := os.Getenv("TP_FLUX_DEV_DIR")
	if dev == "" {
		t.Skip("TP_FLUX_DEV_DIR is not set (ctest sets it)")
	}
	r := must(NewRegistryFromString(`{"models": {"default": {"path": "`+dev+`", "dtype": "fp32"}}}`, nil))
	t.Cleanup(func() { r.Close() })
	p := must(r.Pipeline("default"))
	if p.Type() != "flux" {
		t.Fatalf("pipeline type %q, want flux (detected)", p.Type())
	}
	req := Request{Prompts: []string{prompt}, Seed: 5, Steps: 2, Width: 48, Height: 32}
	plain := must(p.Generate(context.Background(), req))
	if len(plain) != 1 || plain[0].Bounds().Dx() != 48 || plain[0].Bounds().Dy() != 32 {
		t.Fatalf("got %d images of %v", len(plain), plain[0].Bounds())
	}

	cfg := req
	cfg.NegativePrompts = []string{"blurry"}
	cfg.Options = map[string]string{"true_cfg_scale": "2"}
	guided := must(p.Generate(context.Background(), cfg))
	if bytes.Equal(guided[0].Pix, plain[0].Pix) {
		t.Error("true CFG with a negative prompt changed nothing")
	}
	cfg.Options = map[string]string{"true_cfg_scale": "lots"}
	wantCode(t, "a bad true_cfg_scale", errOf(p.Generate(context.Background(), cfg)), InvalidArgument, "true_cfg_scale")
	bad := req
	bad.Width = 40
	wantCode(t, "a width of 40", errOf(p.Generate(context.Background(), bad)), InvalidArgument, "multiple of 16")

	libDir := os.Getenv("TWISTEDPIC_LIB_DIR")
	cli := filepath.Join(libDir, "twistedpic")
	if _, err := os.Stat(cli); libDir == "" || err != nil {
		t.Skip("no CLI to compare with (TWISTEDPIC_LIB_DIR)")
	}
	out := filepath.Join(t.TempDir(), "cli.png")
	if msg, err := exec.Command(cli, "-q", "--model-dir", dev, "generate", prompt, "--seed", "5", "--steps", "2",
		"-W", "48", "-H", "32", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("the CLI failed: %v: %s", err, msg)
	}
	if theirs, ours := must(os.ReadFile(out)), must(plain[0].PNG()); !bytes.Equal(theirs, ours) {
		t.Errorf("the CLI's PNG (%d bytes) differs from the binding's (%d bytes)", len(theirs), len(ours))
	}
}
