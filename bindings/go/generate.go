package twistedpic

/*
#include "twistedpic/tp.h"
*/
import "C"

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Pipeline is a text-to-image pipeline of a Registry (Registry.Pipeline). It
// is safe for concurrent use: several goroutines may Generate at once. Close
// it when done (Registry.Close also closes it); a finalizer closes one that is
// forgotten.
type Pipeline struct {
	reg  *Registry
	mu   sync.RWMutex // held for writing by Close, for reading by Generate and Sizes
	ptr  *cPipeline   // nil once closed
	name string
	typ  string
}

// Name returns the configured model's name.
func (p *Pipeline) Name() string { return p.name }

// Type returns the pipeline type ("sd3").
func (p *Pipeline) Type() string { return p.typ }

// Close destroys the pipeline, after the Generate calls running on it return.
// Idempotent; calls on a closed pipeline fail with FailedPrecondition.
func (p *Pipeline) Close() error {
	p.reg.mu.RLock()
	defer p.reg.mu.RUnlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr == nil {
		return nil
	}
	if p.reg.ptr != nil { // else Registry.Close has destroyed it
		p.reg.pipesMu.Lock()
		delete(p.reg.pipes, p.ptr)
		p.reg.pipesMu.Unlock()
		pipelineDestroy(p.ptr)
	}
	p.ptr = nil
	runtime.SetFinalizer(p, nil)
	return nil
}

// with runs f on the live C pipeline, keeping it and its registry open meanwhile.
func (p *Pipeline) with(f func(*cPipeline) error) error {
	p.reg.mu.RLock()
	defer p.reg.mu.RUnlock()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil || p.reg.ptr == nil {
		return &Error{Code: FailedPrecondition, Message: "the pipeline " + p.name + " is closed"}
	}
	err := f(p.ptr)
	runtime.KeepAlive(p)
	return err
}

// Sizes returns the default image size and the multiple every width and
// height must be.
func (p *Pipeline) Sizes() (width, height, multiple int, err error) {
	err = p.with(func(c *cPipeline) error { width, height, multiple, err = pipelineSizes(c); return err })
	return width, height, multiple, err
}

// Generate makes req's images, prompt-major (every image of the first prompt
// first), leasing each network in turn and releasing it after use.
//
// It honours ctx: when ctx ends mid-way the call stops at the next check
// (between steps, between networks, while waiting for a load) and the error's
// Code is Cancelled while errors.Is(err, ctx.Err()) holds. A Progress handler
// returning false also cancels (without a context error). Other errors:
// InvalidArgument for bad settings (no prompt, a bad size, ...),
// Unimplemented for an unknown option, ResourceExhausted when a network
// cannot fit, the registry's codes for a failed load, Internal for a torch
// failure.
func (p *Pipeline) Generate(ctx context.Context, req Request) ([]*Image, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	var images []*Image
	err := p.with(func(c *cPipeline) error {
		if err := ctx.Err(); err != nil {
			return &Error{Code: Cancelled, Message: "the context ended before the call began", cause: err}
		}
		r, err := requestCreate()
		if err != nil {
			return err
		}
		defer requestDestroy(r) // runs after the watcher below has stopped
		if err := req.apply(r); err != nil {
			return err
		}
		var progress *progressCall
		if req.Progress != nil {
			progress = &progressCall{fn: req.Progress}
			h := handles.add(progress)
			defer handles.del(h)
			if err := requestSetProgress(r, h); err != nil {
				return err
			}
		}

		// A watcher cancels the C request from another goroutine when ctx ends.
		done := make(chan struct{})
		var watcher sync.WaitGroup
		if ctx.Done() != nil {
			watcher.Add(1)
			go func() {
				defer watcher.Done()
				select {
				case <-ctx.Done():
					requestCancel(r)
				case <-done:
				}
			}()
		}
		res, err := pipelineGenerate(c, r)
		close(done)
		watcher.Wait()
		defer resultFree(res)

		if progress != nil && progress.panicked != nil {
			panic(progress.panicked) // on the caller's goroutine, as if Progress had been called directly
		}
		if err != nil {
			if e, ok := err.(*Error); ok && e.Code == Cancelled && ctx.Err() != nil {
				e.cause = ctx.Err()
			}
			return err
		}
		images, err = resultImages(res)
		return err
	})
	return images, err
}

// Stage is what a Generate call is doing, for Progress.
type Stage int32

const (
	StageEncode  Stage = C.TP_STAGE_ENCODE  // the text encoders
	StageDenoise Stage = C.TP_STAGE_DENOISE // one denoising step done
	StageDecode  Stage = C.TP_STAGE_DECODE  // the VAE
	StageWaiting Stage = C.TP_STAGE_WAITING // waiting for a network to load
)

func (s Stage) String() string {
	switch s {
	case StageEncode:
		return "encode"
	case StageDenoise:
		return "denoise"
	case StageDecode:
		return "decode"
	case StageWaiting:
		return "waiting"
	}
	return fmt.Sprintf("Stage(%d)", int32(s))
}

// Progress is one report to Request.Progress.
type Progress struct {
	Stage   Stage
	Step    int // 1-based while denoising; 0 otherwise
	Steps   int // the call's denoising steps
	Elapsed time.Duration
	Model   string // StageWaiting: the registry model being loaded ("tiny/vae"); "" otherwise
}

// Request holds the settings of a Generate call. The zero value of each field
// takes the model's default (or the library's). Settings are checked when
// the call runs; the error names the one at fault. A Request is a plain value:
// one may serve any number of calls, at once too.
type Request struct {
	Prompts         []string // at least one; each gives ImagesPerPrompt images
	NegativePrompts []string // none, one for every prompt, or one per prompt
	ImagesPerPrompt int      // 1..64; 0: 1
	Width, Height   int      // pixels, multiples of Sizes' multiple; 0: the model's
	Steps           int      // denoising steps, 1..1000; 0: the model's
	// Guidance is the classifier-free guidance scale: 0 (or NaN) takes the
	// model's default; 1 or less otherwise turns guidance off.
	Guidance          float64
	Seed              uint64 // of the initial noise, as torch.Generator().manual_seed(seed)
	MaxSequenceLength int    // T5 tokens, 1..512; 0: the model's (256 for SD3, 512 for Flux)
	// Options only some pipeline types have, as text ("true_cfg_scale": "4").
	// An unknown key fails the call with Unimplemented.
	Options map[string]string
	// Progress, when non-nil, is called on the generating goroutine for each
	// report; returning false cancels the call. Calls sharing a Request call
	// it concurrently. A panic in it cancels the call and is re-raised by
	// Generate. It must not close the pipeline or its registry.
	Progress func(Progress) bool
}

// apply copies the settings into r.
func (q *Request) apply(r *cRequest) error {
	for _, s := range q.Prompts {
		if err := requestAddPrompt(r, s); err != nil {
			return err
		}
	}
	for _, s := range q.NegativePrompts {
		if err := requestAddNegativePrompt(r, s); err != nil {
			return err
		}
	}
	ints := []struct {
		what string
		v    int
	}{{"ImagesPerPrompt", q.ImagesPerPrompt}, {"Width", q.Width}, {"Height", q.Height}, {"Steps", q.Steps},
		{"MaxSequenceLength", q.MaxSequenceLength}}
	for _, i := range ints {
		if i.v < math.MinInt32 || i.v > math.MaxInt32 {
			return &Error{Code: InvalidArgument, Message: fmt.Sprintf("%s %d is out of range", i.what, i.v)}
		}
	}
	if q.ImagesPerPrompt != 0 {
		if err := requestSetImagesPerPrompt(r, int32(q.ImagesPerPrompt)); err != nil {
			return err
		}
	}
	if q.Width != 0 || q.Height != 0 {
		if err := requestSetSize(r, int32(q.Width), int32(q.Height)); err != nil {
			return err
		}
	}
	if q.Steps != 0 {
		if err := requestSetSteps(r, int32(q.Steps)); err != nil {
			return err
		}
	}
	if q.Guidance != 0 {
		if err := requestSetGuidance(r, q.Guidance); err != nil {
			return err
		}
	}
	if q.Seed != 0 {
		if err := requestSetSeed(r, q.Seed); err != nil {
			return err
		}
	}
	if q.MaxSequenceLength != 0 {
		if err := requestSetMaxSequenceLength(r, int32(q.MaxSequenceLength)); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(q.Options))
	for k := range q.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same error for the same options
	for _, k := range keys {
		if err := requestSetOption(r, k, q.Options[k]); err != nil {
			return err
		}
	}
	return nil
}

// Image is an RGB8 image, in Go memory. It implements image.Image, so
// image/png and image/draw take it as is; Save and PNG encode it through the
// library (the bytes the C++ CLI writes).
type Image struct {
	// Pix holds the pixels as R, G, B bytes; the pixel at (x, y) starts at
	// Pix[(y-Rect.Min.Y)*Stride + (x-Rect.Min.X)*3].
	Pix    []uint8
	Stride int // bytes between vertically adjacent pixels
	Rect   image.Rectangle
}

// newImage returns a black width x height image.
func newImage(width, height int) *Image {
	return &Image{Pix: make([]uint8, 3*width*height), Stride: 3 * width, Rect: image.Rect(0, 0, width, height)}
}

// Width returns the pixels across.
func (m *Image) Width() int { return m.Rect.Dx() }

// Height returns the pixels down.
func (m *Image) Height() int { return m.Rect.Dy() }

// ColorModel returns color.RGBAModel: every pixel is opaque.
func (m *Image) ColorModel() color.Model { return color.RGBAModel }

// Bounds returns m.Rect.
func (m *Image) Bounds() image.Rectangle { return m.Rect }

// At returns the pixel at (x, y) as a color.RGBA (transparent black outside Rect).
func (m *Image) At(x, y int) color.Color { return m.RGBAAt(x, y) }

// RGBAAt returns the pixel at (x, y), opaque (transparent black outside Rect).
func (m *Image) RGBAAt(x, y int) color.RGBA {
	if !(image.Point{X: x, Y: y}.In(m.Rect)) {
		return color.RGBA{}
	}
	i := (y-m.Rect.Min.Y)*m.Stride + (x-m.Rect.Min.X)*3
	return color.RGBA{R: m.Pix[i], G: m.Pix[i+1], B: m.Pix[i+2], A: 0xff}
}

// Save writes m as a PNG file through the library; the file appears whole or
// not at all. Its errors (NotFound for a missing folder, ...) name the path.
func (m *Image) Save(path string) error { return imageWritePNG(m, path) }

// PNG returns m encoded as PNG by the library: the bytes Save writes.
func (m *Image) PNG() ([]byte, error) { return imageEncodePNG(m) }

// Plan is what acquiring a model would do now (Registry.Plan).
type Plan struct {
	Fits         bool // the model can be admitted (after the evictions)
	Resident     bool // already on the device: nothing to do
	From         Tier // where the weights would come from
	BytesToMove  uint64
	NeededBytes  uint64 // weights + workspace
	FreeBytes    uint64 // usable now (free minus headroom, within the budget)
	BytesEvicted uint64 // what the evictions would free
	Evictions    []string
	Explanation  string // one line for people
}
