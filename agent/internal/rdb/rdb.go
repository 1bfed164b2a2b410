// Package rdb reads the key count of each database out of a Redis RDB file,
// the figure a restore drill later compares with DBSIZE of a scratch
// redis-server that loaded the same file.
//
// An RDB file is the magic "REDIS" and four version digits, then opcodes:
// AUX fields (0xFA, two strings), functions (0xF5, one string), SELECTDB
// (0xFE, a length) and RESIZEDB (0xFB, the database's key count and the
// count of keys with an expiry, as Redis saw them when it forked), then the
// key/value pairs of that database, each an optional expiry, idle or
// frequency opcode, a value type byte, a key string and a value, up to the
// next SELECTDB or EOF (0xFF). RESIZEDB alone would do for one database; to
// reach the next database's SELECTDB the values in between must be skipped,
// so Count walks every pair, counts them, and fails when its count differs
// from RESIZEDB's: a file that parses but disagrees with itself is not
// trusted.
//
// The file is outside input (it comes out of the node's Redis container):
// every length is checked against a bound before anything is allocated, no
// string is held in memory (strings are skipped by length), each loop step
// reads at least one byte so a lying count ends at the end of the input, and
// values the parser cannot skip (module types) are an error naming the type,
// never a guess.
package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Opcodes and value types of the RDB format (Redis's rdb.h).
const (
	opFunction2    = 0xF5
	opFunctionPre  = 0xF6
	opModuleAux    = 0xF7
	opIdle         = 0xF8
	opFreq         = 0xF9
	opAux          = 0xFA
	opResizeDB     = 0xFB
	opExpireTimeMS = 0xFC
	opExpireTime   = 0xFD
	opSelectDB     = 0xFE
	opEOF          = 0xFF
)

// Bounds on what a well-formed file can hold.
const (
	// maxString is Redis's own limit on a string (proto-max-bulk-len's
	// ceiling, 512 MB).
	maxString = 512 << 20
	// maxDB bounds a database number (Redis's databases setting).
	maxDB = 1 << 16
	// maxVersion is the newest RDB version this parser knows (Redis 7.4
	// writes 12).
	maxVersion = 12
)

// ErrFormat is wrapped by every error about the file's content.
var ErrFormat = errors.New("not a valid RDB file")

// Summary is what Count found.
type Summary struct {
	// Version is the RDB format version, e.g. 10 for Redis 7.0.
	Version int
	// Keys is the number of keys of each database that holds any, by
	// database number.
	Keys map[uint32]uint64
}

// Total is the number of keys over every database.
func (s Summary) Total() uint64 {
	var n uint64
	for _, k := range s.Keys {
		n += k
	}
	return n
}

// Count reads an RDB file from r to its EOF opcode and returns the key
// count of each database. It does not verify the trailing CRC64: the drill
// that uses the count loads the file into a real redis-server, which does.
func Count(r io.Reader) (Summary, error) {
	p := parser{r: bufio.NewReaderSize(r, 64<<10)}
	s, err := p.run()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated at byte %d", ErrFormat, p.off)
		}
		return Summary{}, err
	}
	return s, nil
}

type parser struct {
	r   *bufio.Reader
	off int64
}

func formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: byte %d: %s", ErrFormat, off, fmt.Sprintf(format, args...))
}

func (p *parser) run() (Summary, error) {
	var magic [9]byte
	if err := p.full(magic[:]); err != nil {
		return Summary{}, err
	}
	if string(magic[:5]) != "REDIS" {
		return Summary{}, formatErr(0, "no REDIS magic")
	}
	v, err := strconv.Atoi(string(magic[5:]))
	if err != nil || v < 1 || v > maxVersion {
		return Summary{}, formatErr(5, "RDB version %q not supported (1 to %d)", magic[5:], maxVersion)
	}
	s := Summary{Version: v, Keys: map[uint32]uint64{}}
	// db is the current database; resized its RESIZEDB count, if any.
	var db uint32
	resized := map[uint32]uint64{}
	for {
		at := p.off
		op, err := p.byte()
		if err != nil {
			return Summary{}, err
		}
		switch op {
		case opEOF:
			for d, want := range resized {
				if got := s.Keys[d]; got != want {
					return Summary{}, formatErr(at, "database %d: RESIZEDB says %d keys, the file holds %d", d, want, got)
				}
			}
			return s, nil
		case opAux:
			if err := p.skipStrings(2); err != nil {
				return Summary{}, err
			}
		case opFunction2:
			if err := p.skipStrings(1); err != nil {
				return Summary{}, err
			}
		case opSelectDB:
			n, err := p.length()
			if err != nil {
				return Summary{}, err
			}
			if n >= maxDB {
				return Summary{}, formatErr(at, "database number %d out of range", n)
			}
			db = uint32(n)
		case opResizeDB:
			keys, err := p.length()
			if err != nil {
				return Summary{}, err
			}
			if _, err := p.length(); err != nil { // keys with an expiry
				return Summary{}, err
			}
			if _, dup := resized[db]; dup {
				return Summary{}, formatErr(at, "database %d: a second RESIZEDB", db)
			}
			resized[db] = keys
		case opExpireTime:
			if err := p.skip(4); err != nil {
				return Summary{}, err
			}
		case opExpireTimeMS:
			if err := p.skip(8); err != nil {
				return Summary{}, err
			}
		case opIdle:
			if _, err := p.length(); err != nil {
				return Summary{}, err
			}
		case opFreq:
			if err := p.skip(1); err != nil {
				return Summary{}, err
			}
		case opFunctionPre, opModuleAux:
			return Summary{}, formatErr(at, "opcode 0x%X (pre-GA functions or module data) not supported", op)
		default:
			if err := p.skipStrings(1); err != nil { // the key
				return Summary{}, err
			}
			if err := p.skipValue(at, op); err != nil {
				return Summary{}, err
			}
			s.Keys[db]++
		}
	}
}

func (p *parser) full(b []byte) error {
	n, err := io.ReadFull(p.r, b)
	p.off += int64(n)
	return err
}

func (p *parser) byte() (byte, error) {
	b, err := p.r.ReadByte()
	if err == nil {
		p.off++
	}
	return b, err
}

func (p *parser) skip(n uint64) error {
	if n > maxString {
		return formatErr(p.off, "%d bytes to skip, more than a string can hold", n)
	}
	m, err := p.r.Discard(int(n))
	p.off += int64(m)
	return err
}

// lengthOrEncoding reads a length (the two top bits of the first byte say
// how it is written); enc is true when it is instead the encoding of a
// special string (the value then is the encoding: 0 int8, 1 int16, 2
// int32, 3 LZF).
func (p *parser) lengthOrEncoding() (n uint64, enc bool, err error) {
	at := p.off
	b, err := p.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3F), false, nil
	case 1:
		b2, err := p.byte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3F)<<8 | uint64(b2), false, nil
	case 2:
		switch b {
		case 0x80:
			var x [4]byte
			if err := p.full(x[:]); err != nil {
				return 0, false, err
			}
			return uint64(binary.BigEndian.Uint32(x[:])), false, nil
		case 0x81:
			var x [8]byte
			if err := p.full(x[:]); err != nil {
				return 0, false, err
			}
			return binary.BigEndian.Uint64(x[:]), false, nil
		}
		return 0, false, formatErr(at, "length byte 0x%X", b)
	default:
		return uint64(b & 0x3F), true, nil
	}
}

// length reads a length; an encoded string there is an error.
func (p *parser) length() (uint64, error) {
	at := p.off
	n, enc, err := p.lengthOrEncoding()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, formatErr(at, "a string encoding where a length belongs")
	}
	return n, nil
}

// skipStrings skips n strings.
func (p *parser) skipStrings(n uint64) error {
	for range n {
		at := p.off
		l, enc, err := p.lengthOrEncoding()
		if err != nil {
			return err
		}
		if !enc {
			if err := p.skip(l); err != nil {
				return err
			}
			continue
		}
		switch l {
		case 0:
			err = p.skip(1)
		case 1:
			err = p.skip(2)
		case 2:
			err = p.skip(4)
		case 3: // LZF: compressed length, plain length, compressed bytes
			var clen uint64
			if clen, err = p.length(); err != nil {
				return err
			}
			if _, err = p.length(); err != nil {
				return err
			}
			err = p.skip(clen)
		default:
			return formatErr(at, "string encoding %d", l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
