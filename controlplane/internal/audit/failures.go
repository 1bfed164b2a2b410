package audit

import (
	"sort"
	"sync"
	"time"
)

// Failures aggregates denied and failed authentications per client
// address, method and minute, so that a flood of bad credentials becomes at
// most one record per (client, method, reason) a minute, written with the
// next flush, never one write per attempt.
type Failures struct {
	// Max is how many distinct keys one minute may hold; beyond it the rest
	// are counted under client "(other)". 0 means 4096.
	Max int

	mu   sync.Mutex
	aggs map[failKey]*Record
}

type failKey struct {
	minute                 int64
	client, method, reason string
}

// Add counts one failure.
func (f *Failures) Add(at time.Time, client, method, result, reason string) {
	k := failKey{minute: at.Unix() / 60, client: client, method: method, reason: reason}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aggs == nil {
		f.aggs = map[failKey]*Record{}
	}
	r, ok := f.aggs[k]
	if !ok {
		max := f.Max
		if max <= 0 {
			max = 4096
		}
		if len(f.aggs) >= max {
			k.client = "(other)"
			r, ok = f.aggs[k]
		}
		if !ok {
			r = &Record{Time: time.Unix(k.minute*60, 0).UTC(), Client: k.client, Method: method, Result: result, Error: reason}
			f.aggs[k] = r
		}
	}
	r.Count++
}

// Drain returns the aggregates of every minute before now's, oldest first,
// and forgets them; with all set it returns every minute, the current one
// too (at shutdown).
func (f *Failures) Drain(now time.Time, all bool) []Record {
	cur := now.Unix() / 60
	f.mu.Lock()
	var out []Record
	for k, r := range f.aggs {
		if all || k.minute < cur {
			out = append(out, *r)
			delete(f.aggs, k)
		}
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		if out[i].Client != out[j].Client {
			return out[i].Client < out[j].Client
		}
		return out[i].Method < out[j].Method
	})
	return out
}
