package twistedpic

// The raw layer: every cgo call into tp.h, 1:1, turning (tp_code, tp_error*)
// into a Go error and C values into Go values. Ownership and locking live in
// registry.go; the callbacks C calls back into live in callbacks.go.

/*
#cgo LDFLAGS: -ltwistedpic
#include <stdlib.h>
#include "twistedpic/tp.h"

#if TP_VERSION_MAJOR != 0 || !TP_VERSION_CHECK(0, 1, 0)
#error "this twistedpic Go binding needs the twistedpic 0.x headers, 0.1 or newer"
#endif

// The //export trampolines of callbacks.go (as cgo declares them: no const).
extern void tpGoEvent(tp_event* ev, void* user_data);
extern uint32_t tpGoSelectVictims(uint32_t* out, uint32_t max_out, tp_policy_model* models, uint32_t count,
                                  uint64_t need_bytes, void* user_data);
extern void tpGoOnAccess(char* model, void* user_data);
extern void tpGoDestroy(void* user_data);
extern int32_t tpGoProgress(tp_progress* progress, void* user_data);

// Shims with the exact signatures of tp.h's function pointer types. C only ever
// receives a handle-table id as user_data, never a Go pointer.
static void tp_go_event(const tp_event* ev, void* ud) { tpGoEvent((tp_event*)ev, ud); }
static uint32_t tp_go_select_victims(uint32_t* out, uint32_t max_out, const tp_policy_model* models,
                                     uint32_t count, uint64_t need_bytes, void* ud) {
  return tpGoSelectVictims(out, max_out, (tp_policy_model*)models, count, need_bytes, ud);
}
static void tp_go_on_access(const char* model, void* ud) { tpGoOnAccess((char*)model, ud); }

static tp_code tp_go_subscribe(int32_t* out_id, tp_registry* reg, uintptr_t handle, tp_error** out_err) {
  return tp_registry_subscribe(out_id, reg, tp_go_event, (void*)handle, out_err);
}
static int32_t tp_go_progress(const tp_progress* p, void* ud) { return tpGoProgress((tp_progress*)p, ud); }
static tp_code tp_go_set_progress(tp_request* req, uintptr_t handle, tp_error** out_err) {
  return tp_request_set_progress(req, tp_go_progress, (void*)handle, out_err);
}

// The tp_image lives on the C stack: a Go struct holding the Go pointer
// `pixels` could not be passed to C (cgo's pointer rules); the pixels can.
static tp_code tp_go_write_png(int32_t width, int32_t height, int32_t stride, const uint8_t* pixels,
                               const char* path, tp_error** out_err) {
  tp_image img = {sizeof img, width, height, stride, pixels};
  return tp_image_write_png(&img, path, out_err);
}
static tp_code tp_go_encode_png(size_t* out_size, uint8_t* buffer, size_t capacity, int32_t width, int32_t height,
                                int32_t stride, const uint8_t* pixels, tp_error** out_err) {
  tp_image img = {sizeof img, width, height, stride, pixels};
  return tp_image_encode_png(out_size, buffer, capacity, &img, out_err);
}

static tp_code tp_go_add_policy(tp_registry_options* opts, uintptr_t handle, tp_error** out_err) {
  tp_memory_policy_vtable vt = {sizeof vt, tp_go_select_victims, tp_go_on_access, tpGoDestroy};
  return tp_registry_options_add_policy(opts, &vt, (void*)handle, out_err);
}
*/
import "C"

import (
	"math"
	"runtime"
	"time"
	"unsafe"
)

type (
	cRegistry = C.tp_registry
	cOptions  = C.tp_registry_options
	cLease    = C.tp_model
	cPipeline = C.tp_pipeline
	cRequest  = C.tp_request
	cResult   = C.tp_result
)

// call runs f with an error out-parameter and converts its result.
func call(f func(outErr **C.tp_error) C.tp_code) error {
	var cerr *C.tp_error
	code := f(&cerr)
	if code == C.TP_OK {
		return nil
	}
	defer C.tp_error_free(cerr)
	return &Error{Code: Code(code), Message: C.GoString(C.tp_error_message(cerr))}
}

// freeCString releases a C.CString.
func freeCString(s *C.char) { C.free(unsafe.Pointer(s)) }

// ---- Version and names.

const (
	headerVersionNumber = C.TP_VERSION_NUMBER
	headerVersionString = C.TP_VERSION_STRING
)

func libraryVersionNumber() uint32 { return uint32(C.tp_version_number()) }
func libraryVersionString() string { return C.GoString(C.tp_version_string()) }

func codeName(c Code) string     { return C.GoString(C.tp_code_name(C.tp_code(c))) }
func tierName(t Tier) string     { return C.GoString(C.tp_tier_name(C.int32_t(t))) }
func stateName(s State) string   { return C.GoString(C.tp_state_name(C.int32_t(s))) }
func reasonName(r Reason) string { return C.GoString(C.tp_reason_name(C.int32_t(r))) }

// ---- Options.

func optionsCreate() (o *cOptions, err error) {
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_registry_options_create(&o, e) })
	return o, err
}

func optionsDestroy(o *cOptions) { C.tp_registry_options_destroy(o) }

func optionsSetPreset(o *cOptions, preset string) error {
	s := C.CString(preset)
	defer freeCString(s)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_options_set_preset(o, s, e) })
}

func optionsUseSimulatedDevice(o *cOptions, totalBytes uint64) error {
	return call(func(e **C.tp_error) C.tp_code {
		return C.tp_registry_options_use_simulated_device(o, C.uint64_t(totalBytes), e)
	})
}

func optionsSetBackgroundThread(o *cOptions, enabled bool) error {
	on := C.int32_t(0)
	if enabled {
		on = 1
	}
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_options_set_background_thread(o, on, e) })
}

func optionsSetTextEncoderOffload(o *cOptions, tier Tier) error {
	return call(func(e **C.tp_error) C.tp_code {
		return C.tp_registry_options_set_text_encoder_offload(o, C.int32_t(tier), e)
	})
}

// optionsAddPolicy hands the policy at handle to o; C calls tpGoDestroy(handle) exactly once.
func optionsAddPolicy(o *cOptions, handle uintptr) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_go_add_policy(o, C.uintptr_t(handle), e) })
}

// ---- Registry.

func registryCreateFromFile(path string, o *cOptions) (r *cRegistry, err error) {
	s := C.CString(path)
	defer freeCString(s)
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_registry_create_from_file(&r, s, o, e) })
	return r, err
}

func registryCreateFromString(config string, o *cOptions) (r *cRegistry, err error) {
	s := C.CString(config)
	defer freeCString(s)
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_registry_create_from_string(&r, s, o, e) })
	return r, err
}

func registryDestroy(r *cRegistry) { C.tp_registry_destroy(r) }

func registryList(r *cRegistry) ([]ModelInfo, error) {
	var list *C.tp_model_list
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_registry_list(&list, r, e) }); err != nil {
		return nil, err
	}
	return modelListRows(list)
}

// registryInfo returns one model's row.
func registryInfo(r *cRegistry, model string) (ModelInfo, error) {
	s := C.CString(model)
	defer freeCString(s)
	var list *C.tp_model_list
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_registry_info(&list, r, s, e) }); err != nil {
		return ModelInfo{}, err
	}
	rows, err := modelListRows(list)
	if err != nil {
		return ModelInfo{}, err
	}
	return rows[0], nil
}

// modelListRows copies list's rows and frees it.
func modelListRows(list *C.tp_model_list) ([]ModelInfo, error) {
	defer C.tp_model_list_free(list)
	n := C.tp_model_list_count(list)
	out := make([]ModelInfo, 0, n)
	for i := C.uint32_t(0); i < n; i++ {
		var c C.tp_model_info
		c.struct_size = C.uint32_t(unsafe.Sizeof(c))
		if err := call(func(e **C.tp_error) C.tp_code { return C.tp_model_list_get(&c, list, i, e) }); err != nil {
			return nil, err
		}
		out = append(out, ModelInfo{
			Name:         C.GoString(c.name),
			Source:       C.GoString(c.source),
			PipelineType: C.GoString(c.pipeline_type),
			DType:        C.GoString(c.dtype),
			State:        State(c.state),
			Tier:         Tier(c.tier),
			DeviceBytes:  uint64(c.device_bytes),
			HostBytes:    uint64(c.host_bytes),
			Leases:       uint32(c.leases),
			Pinned:       c.pinned != 0,
			Priority:     int32(c.priority),
			LastUseAge:   seconds(c.last_use_age_s),
			ExpiresIn:    seconds(c.expires_in_s),
			LoadCount:    uint64(c.load_count),
			LastLoad:     millis(c.last_load_ms),
			LastError:    C.GoString(c.last_error),
			Device:       C.GoString(c.device),
		})
	}
	return out, nil
}

func registryPlan(r *cRegistry, model string) (Plan, error) {
	s := C.CString(model)
	defer freeCString(s)
	var plan *C.tp_plan
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_registry_plan(&plan, r, s, e) }); err != nil {
		return Plan{}, err
	}
	defer C.tp_plan_free(plan)
	var c C.tp_plan_info
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_plan_get_info(&c, plan, e) }); err != nil {
		return Plan{}, err
	}
	p := Plan{
		Fits:         c.fits != 0,
		Resident:     c.resident != 0,
		From:         Tier(c.from),
		BytesToMove:  uint64(c.bytes_to_move),
		NeededBytes:  uint64(c.needed_bytes),
		FreeBytes:    uint64(c.free_bytes),
		BytesEvicted: uint64(c.bytes_evicted),
		Explanation:  C.GoString(c.explanation),
	}
	for i := C.uint32_t(0); i < c.eviction_count; i++ {
		p.Evictions = append(p.Evictions, C.GoString(C.tp_plan_eviction(plan, i)))
	}
	return p, nil
}

func registryPreload(r *cRegistry, model string) error {
	s := C.CString(model)
	defer freeCString(s)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_preload(r, s, e) })
}

func registryUnload(r *cRegistry, model string, tier Tier) (returned int64, err error) {
	s := C.CString(model)
	defer freeCString(s)
	var b C.int64_t
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_registry_unload(&b, r, s, C.int32_t(tier), e) })
	return int64(b), err
}

func registryUnloadAll(r *cRegistry, tier Tier) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_unload_all(r, C.int32_t(tier), e) })
}

func registryTick(r *cRegistry) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_tick(r, e) })
}

func registryStats(r *cRegistry) (Stats, error) {
	var c C.tp_stats
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_registry_stats(&c, r, e) }); err != nil {
		return Stats{}, err
	}
	s := Stats{
		Hits:              uint64(c.hits),
		Misses:            uint64(c.misses),
		Loads:             uint64(c.loads),
		Reloads:           uint64(c.reloads),
		LoadFailures:      uint64(c.load_failures),
		AdmissionWaits:    uint64(c.admission_waits),
		AdmissionFailures: uint64(c.admission_failures),
		BytesToDevice:     uint64(c.bytes_to_device),
		BytesToHost:       uint64(c.bytes_to_host),
		BytesReturned:     uint64(c.bytes_returned),
		DeviceBytes:       uint64(c.device_bytes),
		PeakDeviceBytes:   uint64(c.peak_device_bytes),
		HostBytes:         uint64(c.host_bytes),
		LoadP50:           millis(c.load_ms_p50),
		LoadP95:           millis(c.load_ms_p95),
		ReloadP50:         millis(c.reload_ms_p50),
		ReloadP95:         millis(c.reload_ms_p95),
	}
	for i, v := range c.evictions {
		s.Evictions[i] = uint64(v)
	}
	return s, nil
}

// registrySubscribe routes events to the func(Event) at handle.
func registrySubscribe(r *cRegistry, handle uintptr) (id int, err error) {
	var cid C.int32_t
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_go_subscribe(&cid, r, C.uintptr_t(handle), e) })
	return int(cid), err
}

func registryUnsubscribe(r *cRegistry, id int) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_registry_unsubscribe(r, C.int32_t(id), e) })
}

// ---- Leases.

func modelAcquire(r *cRegistry, model string) (l *cLease, err error) {
	s := C.CString(model)
	defer freeCString(s)
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_model_acquire(&l, r, s, e) })
	return l, err
}

func modelRelease(l *cLease)            { C.tp_model_release(l) }
func modelName(l *cLease) string        { return C.GoString(C.tp_model_name(l)) }
func modelDeviceBytes(l *cLease) uint64 { return uint64(C.tp_model_device_bytes(l)) }

// ---- Pipelines.

func pipelineCreate(r *cRegistry, name string) (p *cPipeline, err error) {
	s := C.CString(name)
	defer freeCString(s)
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_pipeline_create(&p, r, s, e) })
	return p, err
}

func pipelineDestroy(p *cPipeline)     { C.tp_pipeline_destroy(p) }
func pipelineName(p *cPipeline) string { return C.GoString(C.tp_pipeline_name(p)) }
func pipelineType(p *cPipeline) string { return C.GoString(C.tp_pipeline_type(p)) }

func pipelineSizes(p *cPipeline) (width, height, multiple int, err error) {
	var w, h, m C.int32_t
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_pipeline_sizes(&w, &h, &m, p, e) })
	return int(w), int(h), int(m), err
}

// pipelineGenerate blocks for the whole call.
func pipelineGenerate(p *cPipeline, r *cRequest) (res *cResult, err error) {
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_pipeline_generate(&res, p, r, e) })
	return res, err
}

// ---- Requests.

func requestCreate() (r *cRequest, err error) {
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_request_create(&r, e) })
	return r, err
}

func requestDestroy(r *cRequest) { C.tp_request_destroy(r) }
func requestCancel(r *cRequest)  { C.tp_request_cancel(r) }

func requestAddPrompt(r *cRequest, prompt string) error {
	s := C.CString(prompt)
	defer freeCString(s)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_add_prompt(r, s, e) })
}

func requestAddNegativePrompt(r *cRequest, prompt string) error {
	s := C.CString(prompt)
	defer freeCString(s)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_add_negative_prompt(r, s, e) })
}

func requestSetImagesPerPrompt(r *cRequest, n int32) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_images_per_prompt(r, C.int32_t(n), e) })
}

func requestSetSize(r *cRequest, width, height int32) error {
	return call(func(e **C.tp_error) C.tp_code {
		return C.tp_request_set_size(r, C.int32_t(width), C.int32_t(height), e)
	})
}

func requestSetSteps(r *cRequest, n int32) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_steps(r, C.int32_t(n), e) })
}

func requestSetGuidance(r *cRequest, g float64) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_guidance(r, C.double(g), e) })
}

func requestSetSeed(r *cRequest, seed uint64) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_seed(r, C.uint64_t(seed), e) })
}

func requestSetMaxSequenceLength(r *cRequest, n int32) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_max_sequence_length(r, C.int32_t(n), e) })
}

func requestSetOption(r *cRequest, key, value string) error {
	k, v := C.CString(key), C.CString(value)
	defer freeCString(k)
	defer freeCString(v)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_request_set_option(r, k, v, e) })
}

// requestSetProgress routes r's progress to the *progressCall at handle.
func requestSetProgress(r *cRequest, handle uintptr) error {
	return call(func(e **C.tp_error) C.tp_code { return C.tp_go_set_progress(r, C.uintptr_t(handle), e) })
}

// ---- Results and images.

func resultFree(r *cResult) { C.tp_result_free(r) }

// resultImages copies every image of r into Go memory, packed (stride = 3 * width).
func resultImages(r *cResult) ([]*Image, error) {
	var info C.tp_result_info
	info.struct_size = C.uint32_t(unsafe.Sizeof(info))
	if err := call(func(e **C.tp_error) C.tp_code { return C.tp_result_get_info(&info, r, e) }); err != nil {
		return nil, err
	}
	images := make([]*Image, 0, info.image_count)
	for i := C.uint32_t(0); i < info.image_count; i++ {
		var c C.tp_image
		c.struct_size = C.uint32_t(unsafe.Sizeof(c))
		if err := call(func(e **C.tp_error) C.tp_code { return C.tp_result_get_image(&c, r, i, e) }); err != nil {
			return nil, err
		}
		w, h, stride := int(c.width), int(c.height), int(c.stride)
		src := unsafe.Slice((*byte)(unsafe.Pointer(c.pixels)), stride*h)
		m := newImage(w, h)
		for y := 0; y < h; y++ {
			copy(m.Pix[y*m.Stride:(y+1)*m.Stride], src[y*stride:])
		}
		images = append(images, m)
	}
	return images, nil
}

// cImageArgs checks m and returns tp_image's fields; the pixels stay in Go memory.
func cImageArgs(m *Image) (w, h, stride C.int32_t, pixels *C.uint8_t, err error) {
	dx, dy := m.Rect.Dx(), m.Rect.Dy()
	if dx <= 0 || dy <= 0 || m.Stride < 3*dx || m.Stride > math.MaxInt32 || dy > math.MaxInt32 ||
		len(m.Pix) < m.Stride*(dy-1)+3*dx {
		return 0, 0, 0, nil, &Error{Code: InvalidArgument, Message: "not a whole RGB8 image: " + m.Rect.String() +
			" needs a stride of at least 3 * width and that many bytes a row"}
	}
	return C.int32_t(dx), C.int32_t(dy), C.int32_t(m.Stride), (*C.uint8_t)(unsafe.Pointer(&m.Pix[0])), nil
}

func imageWritePNG(m *Image, path string) error {
	w, h, stride, pixels, err := cImageArgs(m)
	if err != nil {
		return err
	}
	s := C.CString(path)
	defer freeCString(s)
	return call(func(e **C.tp_error) C.tp_code { return C.tp_go_write_png(w, h, stride, pixels, s, e) })
}

func imageEncodePNG(m *Image) ([]byte, error) {
	w, h, stride, pixels, err := cImageArgs(m)
	if err != nil {
		return nil, err
	}
	var size C.size_t
	// Capacity 0 asks for the size: the library answers ResourceExhausted.
	err = call(func(e **C.tp_error) C.tp_code { return C.tp_go_encode_png(&size, nil, 0, w, h, stride, pixels, e) })
	if err != nil && CodeOf(err) != ResourceExhausted {
		return nil, err
	}
	if size == 0 {
		return nil, &Error{Code: Internal, Message: "tp_image_encode_png reported an empty PNG"}
	}
	buf := make([]byte, size)
	err = call(func(e **C.tp_error) C.tp_code {
		return C.tp_go_encode_png(&size, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), w, h, stride,
			pixels, e)
	})
	runtime.KeepAlive(m)
	return buf[:size], err
}

// ---- Values passed to callbacks (borrowed for the call: copied here).

func eventFromC(c *C.tp_event) Event {
	return Event{
		Model:         C.GoString(c.model),
		From:          Tier(c.from),
		To:            Tier(c.to),
		Reason:        Reason(c.reason),
		Failed:        c.failed != 0,
		Bytes:         uint64(c.bytes),
		Duration:      millis(c.ms),
		BytesReturned: int64(c.bytes_returned),
		Error:         C.GoString(c.error),
	}
}

func progressFromC(c *C.tp_progress) Progress {
	return Progress{
		Stage:   Stage(c.stage),
		Step:    int(c.step),
		Steps:   int(c.steps),
		Elapsed: seconds(c.elapsed_s),
		Model:   C.GoString(c.model),
	}
}

func policyModelsFromC(models *C.tp_policy_model, count C.uint32_t) []PolicyModel {
	out := make([]PolicyModel, count)
	for i, c := range unsafe.Slice(models, count) {
		out[i] = PolicyModel{
			Name:        C.GoString(c.name),
			State:       State(c.state),
			Tier:        Tier(c.tier),
			DeviceBytes: uint64(c.device_bytes),
			HostBytes:   uint64(c.host_bytes),
			Leases:      uint32(c.leases),
			Pinned:      c.pinned != 0,
			Priority:    int32(c.priority),
			Evictable:   c.evictable != 0,
			Idle:        seconds(c.idle_seconds),
		}
	}
	return out
}

func seconds(s C.double) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }
func millis(ms C.double) time.Duration { return time.Duration(float64(ms) * float64(time.Millisecond)) }
