package logins

import (
	"container/list"
	"net/netip"
	"slices"
	"time"
)

// windowSeconds is the window's length: the guide's thresholds are per
// minute.
const windowSeconds = 60

// bucket counts one second's failed logins of one address.
type bucket struct {
	sec  int64
	fail uint32
}

// address is what the window keeps of one client: about 1.1 KiB with its map
// and list entries, so the default 10,000 addresses cost about 11 MiB at most.
type address struct {
	addr    netip.Addr
	buckets [windowSeconds]bucket
	blocked int64 // unix second of the last refusal, 0 if none
	seen    int64 // unix second of the last record
}

// failures counts the failed logins of the minute ending at now.
func (a *address) failures(now int64) int {
	n := 0
	for _, b := range a.buckets {
		if b.sec > now-windowSeconds && b.sec <= now {
			n += int(b.fail)
		}
	}
	return n
}

// window keeps, per client address, the failed logins and refusals of the
// last minute. Only those events make an entry, so ordinary traffic costs
// nothing; at most max addresses are kept, and a new one evicts the one
// whose last event is oldest. An attacker spraying from more addresses than
// that can push out an earlier one, but never one that is still attacking
// faster than the spray (its entry moves to the front at every event).
type window struct {
	max     int
	entries map[netip.Addr]*list.Element
	lru     *list.List // of *address, most recent first
	evicted uint64
}

func newWindow(maxAddrs int) *window {
	return &window{max: maxAddrs, entries: make(map[netip.Addr]*list.Element), lru: list.New()}
}

// record counts a failed login (fail) and/or a refusal (blocked) of a at t.
func (w *window) record(a netip.Addr, t time.Time, fail, blocked bool) {
	sec := t.Unix()
	el, ok := w.entries[a]
	if !ok {
		if w.lru.Len() >= w.max {
			old := w.lru.Back()
			delete(w.entries, old.Value.(*address).addr)
			w.lru.Remove(old)
			w.evicted++
		}
		el = w.lru.PushFront(&address{addr: a})
		w.entries[a] = el
	}
	w.lru.MoveToFront(el)
	e := el.Value.(*address)
	e.seen = max(e.seen, sec)
	if fail {
		b := &e.buckets[sec%windowSeconds]
		if b.sec != sec {
			*b = bucket{sec: sec}
		}
		b.fail++
	}
	if blocked {
		e.blocked = max(e.blocked, sec)
	}
}

// Count is one address's failed logins in the last minute.
type Count struct {
	Addr  netip.Addr
	Count int
}

// read returns the addresses with failed logins in the minute ending at now,
// worst first (ties by address, so the order is stable), and how many
// distinct addresses were refused in it. It drops entries with nothing left
// in the window.
func (w *window) read(now time.Time) (failed []Count, blocked int) {
	sec := now.Unix()
	for el := w.lru.Back(); el != nil; {
		prev := el.Prev()
		e := el.Value.(*address)
		if e.seen <= sec-windowSeconds {
			delete(w.entries, e.addr)
			w.lru.Remove(el)
			el = prev
			continue
		}
		if n := e.failures(sec); n > 0 {
			failed = append(failed, Count{Addr: e.addr, Count: n})
		}
		if e.blocked > sec-windowSeconds {
			blocked++
		}
		el = prev
	}
	slices.SortFunc(failed, func(a, b Count) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return a.Addr.Compare(b.Addr)
	})
	return failed, blocked
}
