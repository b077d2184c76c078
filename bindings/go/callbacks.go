package twistedpic

// The functions C calls back into. user_data is a handle-table id; a deleted
// id (an unsubscribed handler, a closed registry) makes the call a no-op.
// No panic may unwind into C: each trampoline recovers and logs it.

/*
#include "twistedpic/tp.h"
*/
import "C"

import (
	"log"
	"runtime/debug"
	"unsafe"
)

// logPanic, deferred, stops and logs a panic of the callback `what`.
func logPanic(what string) {
	if p := recover(); p != nil {
		log.Printf("twistedpic: recovered panic in %s: %v\n%s", what, p, debug.Stack())
	}
}

//export tpGoEvent
func tpGoEvent(ev *C.tp_event, userData unsafe.Pointer) {
	defer logPanic("event handler")
	if fn, ok := handles.get(uintptr(userData)).(func(Event)); ok {
		fn(eventFromC(ev))
	}
}

//export tpGoSelectVictims
func tpGoSelectVictims(out *C.uint32_t, maxOut C.uint32_t, models *C.tp_policy_model, count C.uint32_t,
	needBytes C.uint64_t, userData unsafe.Pointer) (n C.uint32_t) {
	defer logPanic("MemoryPolicy.SelectVictims")
	p, ok := handles.get(uintptr(userData)).(MemoryPolicy)
	if !ok {
		return 0
	}
	picked := p.SelectVictims(policyModelsFromC(models, count), uint64(needBytes))
	dst := unsafe.Slice(out, maxOut)
	for _, i := range picked {
		if int(n) < len(dst) && i >= 0 && i < int(count) {
			dst[n] = C.uint32_t(i)
			n++
		}
	}
	return n
}

//export tpGoOnAccess
func tpGoOnAccess(model *C.char, userData unsafe.Pointer) {
	defer logPanic("MemoryPolicy.OnAccess")
	if p, ok := handles.get(uintptr(userData)).(MemoryPolicy); ok {
		p.OnAccess(C.GoString(model))
	}
}

//export tpGoDestroy
func tpGoDestroy(userData unsafe.Pointer) {
	handles.del(uintptr(userData))
}

// progressCall is one Generate call's progress handler. A panic in it is kept
// here, cancels the call, and is re-raised by Generate on its own goroutine.
type progressCall struct {
	fn       func(Progress) bool
	panicked any
}

//export tpGoProgress
func tpGoProgress(p *C.tp_progress, userData unsafe.Pointer) (stop C.int32_t) {
	call, ok := handles.get(uintptr(userData)).(*progressCall)
	if !ok || call.panicked != nil {
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			call.panicked = r
			stop = 1
		}
	}()
	if call.fn(progressFromC(p)) {
		return 0
	}
	return 1
}
