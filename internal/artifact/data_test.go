package artifact_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// rows returns n bytes of text shaped like the COPY data of a pg_dump:
// tab-separated rows with ids, UUIDs, e-mail addresses, names, timestamps
// and small JSON documents, so it compresses about as well as real dumps.
func rows(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // test data
	first := []string{"ada", "alan", "grace", "edsger", "barbara", "ken", "dennis", "margaret", "linus", "radia"}
	last := []string{"lovelace", "turing", "hopper", "dijkstra", "liskov", "thompson", "ritchie", "hamilton", "torvalds", "perlman"}
	status := []string{"active", "pending", "suspended", "deleted"}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]byte, 0, n+512)
	for id := 1; len(out) < n; id++ {
		f, l := first[r.IntN(len(first))], last[r.IntN(len(last))]
		out = strconv.AppendInt(out, int64(id), 10)
		out = fmt.Appendf(out, "\t%08x-%04x-%04x-%04x-%012x\t%s.%s%d@example.com\t%s %s\t",
			r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff,
			f, l, r.IntN(1000), f, l)
		out = base.Add(time.Duration(r.Int64N(int64(365*24*time.Hour)))).AppendFormat(out, "2006-01-02 15:04:05.999999-07")
		out = fmt.Appendf(out, "\t{\"status\": \"%s\", \"logins\": %d, \"score\": %.3f}\n",
			status[r.IntN(len(status))], r.IntN(5000), r.Float64()*100)
	}
	return out[:n]
}

// hexRows returns n bytes shaped like the COPY data of a table of bytea
// ciphertext, as the stand-in API's vault_items: pg_dump writes bytea as
// hex, so the bulk is hex digits of random bytes, with few matches for
// zstd but half of it saved by Huffman coding.
func hexRows(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4)) //nolint:gosec // test data
	ct := make([]byte, 4096)
	out := make([]byte, 0, n+2*len(ct)+512)
	for id := 1; len(out) < n; id++ {
		out = fmt.Appendf(out, "%d\tuser%d@example.com\tGitHub (work)\t\\\\x", id, r.IntN(500))
		c := ct[:300+r.IntN(3700)]
		for i := range c {
			c[i] = byte(r.Uint32())
		}
		out = hex.AppendEncode(out, c)
		out = append(out, "\t2024-03-04 05:06:07.123456+00\t2024-03-04 05:06:07.123456+00\n"...)
	}
	return out[:n]
}

// random returns n pseudo-random (incompressible) bytes.
func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(b)
	return b
}

var (
	benchRows = sync.OnceValue(func() []byte { return rows(64 << 20) })
	benchHex  = sync.OnceValue(func() []byte { return hexRows(64 << 20) })
)
