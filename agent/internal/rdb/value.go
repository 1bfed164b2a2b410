package rdb

// Value types of the RDB format (Redis's rdb.h, RDB_TYPE_*).
const (
	typeString         = 0
	typeList           = 1
	typeSet            = 2
	typeZSet           = 3
	typeHash           = 4
	typeZSet2          = 5
	typeModule         = 6
	typeModule2        = 7
	typeHashZipmap     = 9
	typeListZiplist    = 10
	typeSetIntset      = 11
	typeZSetZiplist    = 12
	typeHashZiplist    = 13
	typeListQuicklist  = 14
	typeStreamLP       = 15
	typeHashListpack   = 16
	typeZSetListpack   = 17
	typeListQuicklist2 = 18
	typeStreamLP2      = 19
	typeSetListpack    = 20
	typeStreamLP3      = 21
)

// skipValue skips the value of a key of type t (read at byte at).
func (p *parser) skipValue(at int64, t byte) error {
	switch t {
	case typeString, typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist,
		typeHashZiplist, typeHashListpack, typeZSetListpack, typeSetListpack:
		return p.skipStrings(1) // the value, or one encoded blob
	case typeList, typeSet, typeListQuicklist:
		n, err := p.length()
		if err != nil {
			return err
		}
		return p.skipStrings(n)
	case typeHash:
		return p.skipEach(func() error { return p.skipStrings(2) })
	case typeZSet:
		return p.skipEach(func() error { return first(p.skipStrings(1), p.skipOldDouble) })
	case typeZSet2:
		return p.skipEach(func() error { return first(p.skipStrings(1), func() error { return p.skip(8) }) })
	case typeListQuicklist2:
		return p.skipEach(func() error { // container (plain or packed), then its blob
			if _, err := p.length(); err != nil {
				return err
			}
			return p.skipStrings(1)
		})
	case typeStreamLP, typeStreamLP2, typeStreamLP3:
		return p.skipStream(t)
	case typeModule, typeModule2:
		return formatErr(at, "a module value (type %d): its key count cannot be read without the module", t)
	}
	return formatErr(at, "unknown value type %d", t)
}

// skipOldDouble skips a double of the old ZSET encoding: a length byte,
// with 253, 254 and 255 meaning NaN, +inf and -inf and no bytes after.
func (p *parser) skipOldDouble() error {
	n, err := p.byte()
	if err != nil {
		return err
	}
	if n >= 253 {
		return nil
	}
	return p.skip(uint64(n))
}

// skipStream skips a stream value (rdb.c rdbLoadObject, the
// RDB_TYPE_STREAM_LISTPACKS* cases).
func (p *parser) skipStream(t byte) error {
	nodes, err := p.length()
	if err != nil {
		return err
	}
	for range nodes {
		if err := p.skipStrings(2); err != nil { // master ID, listpack
			return err
		}
	}
	// Length, last ID (ms, seq); from v2 also first ID, max deleted ID,
	// entries added.
	lengths := 3
	if t >= typeStreamLP2 {
		lengths += 5
	}
	if err := p.skipLengths(lengths); err != nil {
		return err
	}
	groups, err := p.length()
	if err != nil {
		return err
	}
	for range groups {
		if err := p.skipStrings(1); err != nil { // name
			return err
		}
		if err := p.skipLengths(2); err != nil { // last delivered ID
			return err
		}
		if t >= typeStreamLP2 {
			if err := p.skipLengths(1); err != nil { // entries read
				return err
			}
		}
		pel, err := p.length()
		if err != nil {
			return err
		}
		for range pel {
			if err := p.skip(16 + 8); err != nil { // raw ID, delivery time
				return err
			}
			if err := p.skipLengths(1); err != nil { // delivery count
				return err
			}
		}
		consumers, err := p.length()
		if err != nil {
			return err
		}
		for range consumers {
			if err := p.skipStrings(1); err != nil { // name
				return err
			}
			seen := uint64(8)
			if t >= typeStreamLP3 {
				seen += 8 // active time
			}
			if err := p.skip(seen); err != nil {
				return err
			}
			owned, err := p.length()
			if err != nil {
				return err
			}
			for range owned {
				if err := p.skip(16); err != nil { // raw ID
					return err
				}
			}
		}
	}
	return nil
}

func (p *parser) skipLengths(n int) error {
	for range n {
		if _, err := p.length(); err != nil {
			return err
		}
	}
	return nil
}

// skipEach reads a count, then skips that many elements with one. Each
// element reads at least one byte, so a lying count ends at the input's end.
func (p *parser) skipEach(one func() error) error {
	n, err := p.length()
	if err != nil {
		return err
	}
	for range n {
		if err := one(); err != nil {
			return err
		}
	}
	return nil
}

// first returns err, or then's error when err is nil: then reads only
// after a read that succeeded.
func first(err error, then func() error) error {
	if err != nil {
		return err
	}
	return then()
}
