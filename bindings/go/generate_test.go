package twistedpic

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tinyModel is the shipped default model (models/tiny-sd3 of this source
// tree, or TWISTEDPIC_MODEL_DIR): a 32x32 SD3 that runs on the CPU.
func tinyModel(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("TWISTEDPIC_MODEL_DIR"); dir != "" {
		return dir
	}
	dir, err := filepath.Abs("../../models/tiny-sd3")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// newTinyRegistry creates a registry with the pipeline "tiny", closed at the
// end of the test.
func newTinyRegistry(t *testing.T) *Registry {
	t.Helper()
	config := `{"models": {"tiny": {"path": "` + tinyModel(t) + `", "pipeline_type": "sd3", "dtype": "fp32"}}}`
	r, err := NewRegistryFromString(config, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func tinyRequest(prompt string, seed uint64, steps int) Request {
	return Request{Prompts: []string{prompt}, Seed: seed, Steps: steps}
}

// pixels generates one 4-step image and returns its pixels.
func pixels(t *testing.T, p *Pipeline, prompt string, seed uint64) []byte {
	images, err := p.Generate(context.Background(), tinyRequest(prompt, seed, 4))
	if err != nil {
		t.Error(err)
		return nil
	}
	if len(images) != 1 {
		t.Errorf("%d images, want 1", len(images))
		return nil
	}
	return images[0].Pix
}

func wantCode(t *testing.T, what string, err error, code Code, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: got %v, want %v containing %q", what, err, code, msg)
	}
}

func TestGenerateSavesTheSamePNGAsTheCLI(t *testing.T) {
	const prompt = "a red circle on a white background"
	libDir := os.Getenv("TWISTEDPIC_LIB_DIR")
	if libDir == "" {
		t.Skip("TWISTEDPIC_LIB_DIR is not set (run_tests.sh sets it): no CLI to compare with")
	}
	cli := filepath.Join(libDir, "twistedpic")
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("no CLI to compare with: %v", err)
	}
	dir := t.TempDir()
	cliDir := filepath.Join(dir, "cli")
	if err := os.Mkdir(cliDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The CLI runs while this process generates.
	var stderr bytes.Buffer
	cmd := exec.Command(cli, "-q", "--model-dir", tinyModel(t), "generate", prompt, "--seed", "5", "-o", cliDir)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	p := must(newTinyRegistry(t).Pipeline("tiny"))
	images := must(p.Generate(context.Background(), Request{Prompts: []string{prompt}, Seed: 5}))
	if len(images) != 1 {
		t.Fatalf("%d images, want 1", len(images))
	}
	ours := filepath.Join(dir, "ours.png")
	if err := images[0].Save(ours); err != nil {
		t.Fatal(err)
	}
	oursBytes := must(os.ReadFile(ours))
	if encoded := must(images[0].PNG()); !bytes.Equal(encoded, oursBytes) {
		t.Error("PNG() and Save() disagree")
	}

	if err := cmd.Wait(); err != nil {
		t.Fatalf("the CLI failed: %v: %s", err, stderr.String())
	}
	pngs := must(filepath.Glob(filepath.Join(cliDir, "*.png")))
	if len(pngs) != 1 {
		t.Fatalf("the CLI wrote %v", pngs)
	}
	if theirs := must(os.ReadFile(pngs[0])); !bytes.Equal(theirs, oursBytes) {
		t.Errorf("%s (%d bytes) differs from Save()'s (%d bytes)", pngs[0], len(theirs), len(oursBytes))
	}

	// image/png takes the Image as an image.Image; decoding gives the same pixels.
	var buf bytes.Buffer
	if err := png.Encode(&buf, images[0]); err != nil {
		t.Fatal(err)
	}
	decoded := must(png.Decode(&buf))
	if decoded.Bounds() != image.Rect(0, 0, 32, 32) {
		t.Fatalf("decoded bounds %v", decoded.Bounds())
	}
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			r1, g1, b1, a1 := decoded.At(x, y).RGBA()
			r2, g2, b2, a2 := images[0].At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				t.Fatalf("pixel (%d, %d) differs after png.Encode/Decode", x, y)
			}
		}
	}
}

func TestProgressReachesEveryStep(t *testing.T) {
	r := newTinyRegistry(t)
	p := must(r.Pipeline("tiny"))
	if p.Name() != "tiny" || p.Type() != "sd3" {
		t.Errorf("Name, Type = %q, %q", p.Name(), p.Type())
	}
	if w, h, m, err := p.Sizes(); err != nil || w != 32 || h != 32 || m != 8 {
		t.Errorf("Sizes() = %d, %d, %d, %v; want 32, 32, 8", w, h, m, err)
	}

	var seen []Progress
	req := tinyRequest("a red circle on a white background", 7, 5)
	req.Progress = func(p Progress) bool { seen = append(seen, p); return true }
	images := must(p.Generate(context.Background(), req))
	var steps []int
	waited := false
	for _, s := range seen {
		if s.Steps != 5 {
			t.Errorf("%+v: Steps != 5", s)
		}
		switch s.Stage {
		case StageDenoise:
			steps = append(steps, s.Step)
		case StageWaiting:
			waited = true
			if !strings.HasPrefix(s.Model, "tiny/") {
				t.Errorf("waiting for %q", s.Model)
			}
		}
	}
	if len(steps) != 5 || steps[0] != 1 || steps[4] != 5 {
		t.Errorf("denoising steps %v, want 1..5", steps)
	}
	decode := -1
	for i, s := range seen {
		if s.Stage == StageDecode && decode < 0 {
			decode = i
		}
		if s.Stage == StageDenoise && decode >= 0 {
			t.Errorf("a denoising step after decoding began: %v", seen)
		}
	}
	if len(seen) == 0 || seen[0].Stage != StageEncode || decode < 0 || !waited {
		t.Errorf("stages %v: want encode first, a wait for a load, a decode", seen)
	}
	if m := images[0]; m.Width() != 32 || m.Height() != 32 || len(m.Pix) != 32*32*3 || m.Stride != 96 {
		t.Errorf("image %v, stride %d, %d bytes", m.Rect, m.Stride, len(m.Pix))
	}

	// Nothing stays leased; the registry answers for each network.
	for _, m := range must(r.List()) {
		if m.Leases != 0 {
			t.Errorf("%s: %d leases", m.Name, m.Leases)
		}
	}
	if info := must(r.Info("tiny/vae")); info.PipelineType != "sd3:vae" {
		t.Errorf("Info(tiny/vae) = %+v", info)
	}
	if plan := must(r.Plan("tiny/vae")); !plan.Fits || plan.Explanation == "" {
		t.Errorf("Plan(tiny/vae) = %+v", plan)
	}
	wantCode(t, "Info", errOf(r.Info("nope")), NotFound, "nope")
	wantCode(t, "Plan", errOf(r.Plan("nope")), NotFound, "nope")
}

func TestContextCancelsMidWayAndTheNextCallWorks(t *testing.T) {
	const prompt = "a green triangle on a black background"
	p := must(newTinyRegistry(t).Pipeline("tiny"))
	want := pixels(t, p, prompt, 11)

	// The context is cancelled at step 2, from the progress handler; a
	// watcher goroutine calls tp_request_cancel.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	last := 0
	req := tinyRequest(prompt, 11, 20)
	req.Progress = func(p Progress) bool {
		if p.Stage == StageDenoise {
			last = p.Step
			if p.Step == 2 {
				cancel()
				time.Sleep(50 * time.Millisecond) // let the watcher run before the next check
			}
		}
		return true
	}
	images, err := p.Generate(ctx, req)
	if !errors.Is(err, context.Canceled) || CodeOf(err) != Cancelled || !IsCancelled(err) || images != nil {
		t.Fatalf("got %v, %v: want a Cancelled error wrapping context.Canceled", images, err)
	}
	if last >= 20 {
		t.Errorf("ran every step (%d) despite the cancel", last)
	}
	t.Logf("cancelled after step %d: %v", last, err)
	if !bytes.Equal(pixels(t, p, prompt, 11), want) {
		t.Error("the call after the cancelled one differs")
	}

	// A context that has already ended: no call at all.
	if _, err := p.Generate(ctx, tinyRequest(prompt, 11, 4)); !errors.Is(err, context.Canceled) || !IsCancelled(err) {
		t.Errorf("ended context: %v", err)
	}
	// A deadline.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer dcancel()
	<-dctx.Done()
	if _, err := p.Generate(dctx, tinyRequest(prompt, 11, 4)); !errors.Is(err, context.DeadlineExceeded) ||
		!IsCancelled(err) {
		t.Errorf("deadline: %v", err)
	}

	// The progress handler says no: Cancelled, with no context error.
	req = tinyRequest(prompt, 11, 6)
	req.Progress = func(p Progress) bool { return p.Step < 2 }
	_, err = p.Generate(context.Background(), req)
	if !IsCancelled(err) || errors.Is(err, context.Canceled) {
		t.Errorf("progress returned false: %v", err)
	}
	if !bytes.Equal(pixels(t, p, prompt, 11), want) {
		t.Error("the call after the cancelled one differs")
	}
	if n := handles.len(); n != 0 {
		t.Errorf("%d handles left", n)
	}
}

func TestPanicInProgressCancelsAndReachesTheCaller(t *testing.T) {
	p := must(newTinyRegistry(t).Pipeline("tiny"))
	req := tinyRequest("x", 1, 3)
	req.Progress = func(p Progress) bool {
		if p.Stage == StageDenoise {
			panic("boom in progress")
		}
		return true
	}
	func() {
		defer func() {
			if r := recover(); r != "boom in progress" {
				t.Errorf("recovered %v", r)
			}
		}()
		p.Generate(context.Background(), req)
		t.Error("Generate returned")
	}()
	if len(pixels(t, p, "x", 1)) != 32*32*3 {
		t.Error("the pipeline broke")
	}
}

func TestGoroutinesGenerateAtOnceOnOnePipelineAndOnTwo(t *testing.T) {
	prompts := []string{"a red circle on a white background", "an orange circle on a purple background"}
	r := newTinyRegistry(t)
	first := must(r.Pipeline("tiny"))
	want0, want1 := pixels(t, first, prompts[0], 21), pixels(t, first, prompts[1], 22)
	second := must(r.Pipeline("tiny"))
	for _, other := range []*Pipeline{first, second} {
		var got0, got1 []byte
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); got0 = pixels(t, first, prompts[0], 21) }()
		go func() { defer wg.Done(); got1 = pixels(t, other, prompts[1], 22) }()
		wg.Wait()
		if !bytes.Equal(got0, want0) || !bytes.Equal(got1, want1) {
			t.Errorf("concurrent images differ (second pipeline: %v)", other == second)
		}
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	second.Close() // idempotent
	wantCode(t, "closed pipeline", errOf(second.Generate(context.Background(), tinyRequest("x", 1, 1))),
		FailedPrecondition, "closed")
}

func TestBadInputGetsAnErrorWithItsCode(t *testing.T) {
	r := newTinyRegistry(t)
	wantCode(t, "unknown pipeline", errOf(r.Pipeline("nope")), NotFound, "nope")
	wantCode(t, "a network, not a pipeline", errOf(r.Pipeline("tiny/vae")), InvalidArgument, "'vae' network")
	p := must(r.Pipeline("tiny"))
	ctx := context.Background()
	for _, c := range []struct {
		what string
		req  Request
		code Code
		msg  string
	}{
		{"no prompt", Request{Seed: 1}, InvalidArgument, "no prompts"},
		{"size 30", Request{Prompts: []string{"x"}, Width: 30, Height: 32}, InvalidArgument,
			"width 30 is not a positive multiple of 8"},
		{"steps 1001", tinyRequest("x", 1, 1001), InvalidArgument, "steps"},
		{"negative images", Request{Prompts: []string{"x"}, ImagesPerPrompt: -1}, InvalidArgument, ""},
		{"huge width", Request{Prompts: []string{"x"}, Width: 1 << 40}, InvalidArgument, "Width"},
		{"unknown option", Request{Prompts: []string{"x"}, Options: map[string]string{"true_cfg_scale": "4"}},
			Unimplemented, "true_cfg_scale"},
	} {
		wantCode(t, c.what, errOf(p.Generate(ctx, c.req)), c.code, c.msg)
	}
	m := &Image{Pix: []uint8{255, 0, 0, 0, 0, 255}, Stride: 6, Rect: image.Rect(0, 0, 2, 1)}
	wantCode(t, "missing folder", m.Save("/nonexistent/dir/x.png"), NotFound, "/nonexistent/dir/x.png")
	if b := must(m.PNG()); !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("PNG() = %q...", b[:8])
	}
	short := &Image{Pix: make([]uint8, 3), Stride: 6, Rect: image.Rect(0, 0, 2, 2)}
	wantCode(t, "short pixels", short.Save(filepath.Join(t.TempDir(), "x.png")), InvalidArgument, "RGB8")

	// The pipeline still works; closing the registry closes it.
	if len(pixels(t, p, "a red circle on a white background", 1)) != 32*32*3 {
		t.Error("the pipeline broke")
	}
	r.Close()
	wantCode(t, "after Registry.Close", errOf(p.Generate(ctx, tinyRequest("x", 1, 1))), FailedPrecondition, "closed")
	p.Close()
}
