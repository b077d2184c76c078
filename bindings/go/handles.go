package twistedpic

import "sync"

// handleTable maps the integer ids C holds as user_data to Go values, so that
// C never holds a Go pointer. Ids start at 1: C never sees NULL.
type handleTable struct {
	mu   sync.Mutex
	last uintptr
	vals map[uintptr]any
}

var handles = handleTable{vals: map[uintptr]any{}}

func (t *handleTable) add(v any) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last++
	t.vals[t.last] = v
	return t.last
}

// get returns the value at h, or nil once h is deleted.
func (t *handleTable) get(h uintptr) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.vals[h]
}

func (t *handleTable) del(h uintptr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.vals, h)
}

func (t *handleTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.vals)
}
