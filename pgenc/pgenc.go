// Package pgenc converts between a client's encoding and UTF-8, the one
// encoding pgwarden parses and speaks to warehouses. It knows PostgreSQL's
// client encodings by PostgreSQL's names and aliases, converts with
// golang.org/x/text/encoding (no tables of our own), and fails like
// PostgreSQL: 22021 for a byte sequence that is not a character of the
// encoding, 22P05 for a character with no equivalent on the other side.
package pgenc

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"

	"github.com/pgwarden/pgwarden/pgerr"
)

// SQLSTATEs of conversion failures (PostgreSQL appendix A).
const (
	CharacterNotInRepertoire = "22021"
	UntranslatableCharacter  = "22P05"
)

// Encoding is one of PostgreSQL's client encodings that pgwarden converts.
// It is immutable and safe for concurrent use.
type Encoding struct {
	// Name is PostgreSQL's name for it, as client_encoding reports it.
	Name string
	// conv is nil for UTF8 and SQL_ASCII, whose bytes pass unchanged.
	conv encoding.Encoding
	// char returns the length of the character b starts with (at least
	// 1) and whether its bytes are well formed, by PostgreSQL's
	// pg_encoding_verifymbchar rules for the encoding.
	char func(b []byte) (int, bool)
	// single: a single-byte encoding, whose x/text table is one-to-one.
	single bool
}

// UTF8 is the encoding warehouses speak and most clients use.
var UTF8 = &Encoding{Name: "UTF8", char: utf8Char}

// Converts reports whether text needs converting (anything but UTF8 and
// SQL_ASCII).
func (e *Encoding) Converts() bool { return e.conv != nil }

// Unsupported lists PostgreSQL client encodings that golang.org/x/text has
// no converter for: pgwarden refuses them as PostgreSQL refuses an encoding
// pair it has no conversion for.
var Unsupported = []string{"EUC_TW", "EUC_JIS_2004", "SHIFT_JIS_2004", "JOHAB", "MULE_INTERNAL"}

var sqlASCII = &Encoding{Name: "SQL_ASCII", char: utf8Char}

// byName maps PostgreSQL's cleaned names and aliases (src/common/encnames.c)
// to encodings; nil marks the ones in Unsupported.
var byName = func() map[string]*Encoding {
	single := func(name string, cm *charmap.Charmap) *Encoding {
		return &Encoding{Name: name, conv: cm, char: singleChar, single: true}
	}
	latin1 := single("LATIN1", charmap.ISO8859_1)
	latin2 := single("LATIN2", charmap.ISO8859_2)
	latin3 := single("LATIN3", charmap.ISO8859_3)
	latin4 := single("LATIN4", charmap.ISO8859_4)
	latin5 := single("LATIN5", charmap.ISO8859_9)
	latin6 := single("LATIN6", charmap.ISO8859_10)
	latin7 := single("LATIN7", charmap.ISO8859_13)
	latin8 := single("LATIN8", charmap.ISO8859_14)
	latin9 := single("LATIN9", charmap.ISO8859_15)
	latin10 := single("LATIN10", charmap.ISO8859_16)
	win866 := single("WIN866", charmap.CodePage866)
	win874 := single("WIN874", charmap.Windows874)
	win1250 := single("WIN1250", charmap.Windows1250)
	win1251 := single("WIN1251", charmap.Windows1251)
	win1252 := single("WIN1252", charmap.Windows1252)
	win1253 := single("WIN1253", charmap.Windows1253)
	win1254 := single("WIN1254", charmap.Windows1254)
	win1255 := single("WIN1255", charmap.Windows1255)
	win1256 := single("WIN1256", charmap.Windows1256)
	win1257 := single("WIN1257", charmap.Windows1257)
	win1258 := single("WIN1258", charmap.Windows1258)
	koi8r := single("KOI8R", charmap.KOI8R)
	sjis := &Encoding{Name: "SJIS", conv: japanese.ShiftJIS, char: sjisChar}
	big5 := &Encoding{Name: "BIG5", conv: traditionalchinese.Big5, char: dbcsChar}
	gbk := &Encoding{Name: "GBK", conv: simplifiedchinese.GBK, char: dbcsChar}
	uhc := &Encoding{Name: "UHC", conv: korean.EUCKR, char: dbcsChar} // x/text's EUC-KR is CP949, i.e. UHC
	return map[string]*Encoding{
		"sqlascii": sqlASCII, "utf8": UTF8, "unicode": UTF8,
		"latin1": latin1, "iso88591": latin1, "latin2": latin2, "iso88592": latin2,
		"latin3": latin3, "iso88593": latin3, "latin4": latin4, "iso88594": latin4,
		"latin5": latin5, "iso88599": latin5, "latin6": latin6, "iso885910": latin6,
		"latin7": latin7, "iso885913": latin7, "latin8": latin8, "iso885914": latin8,
		"latin9": latin9, "iso885915": latin9, "latin10": latin10, "iso885916": latin10,
		"iso88595": single("ISO_8859_5", charmap.ISO8859_5), "iso88596": single("ISO_8859_6", charmap.ISO8859_6),
		"iso88597": single("ISO_8859_7", charmap.ISO8859_7), "iso88598": single("ISO_8859_8", charmap.ISO8859_8),
		"win866": win866, "windows866": win866, "alt": win866,
		"win874": win874, "windows874": win874,
		"win1250": win1250, "windows1250": win1250, "win1251": win1251, "windows1251": win1251, "win": win1251,
		"win1252": win1252, "windows1252": win1252, "win1253": win1253, "windows1253": win1253,
		"win1254": win1254, "windows1254": win1254, "win1255": win1255, "windows1255": win1255,
		"win1256": win1256, "windows1256": win1256, "win1257": win1257, "windows1257": win1257,
		"win1258": win1258, "windows1258": win1258, "abc": win1258, "tcvn": win1258, "tcvn5712": win1258, "vscii": win1258,
		"koi8r": koi8r, "koi8": koi8r, "koi8u": single("KOI8U", charmap.KOI8U),
		"eucjp": {Name: "EUC_JP", conv: japanese.EUCJP, char: eucJPChar},
		"euccn": {Name: "EUC_CN", conv: simplifiedchinese.GBK, char: eucChar}, // GB2312 is GBK's EUC range
		"euckr": {Name: "EUC_KR", conv: korean.EUCKR, char: eucChar},          // KS X 1001 is UHC's EUC range
		"sjis":  sjis, "shiftjis": sjis, "mskanji": sjis, "win932": sjis, "windows932": sjis,
		"big5": big5, "win950": big5, "windows950": big5,
		"gbk": gbk, "win936": gbk, "windows936": gbk,
		"uhc": uhc, "win949": uhc, "windows949": uhc,
		"gb18030": {Name: "GB18030", conv: simplifiedchinese.GB18030, char: gb18030Char},
		"euctw":   nil, "eucjis2004": nil, "shiftjis2004": nil, "johab": nil, "muleinternal": nil,
	}
}()

var unsupportedName = map[string]string{
	"euctw": "EUC_TW", "eucjis2004": "EUC_JIS_2004", "shiftjis2004": "SHIFT_JIS_2004", "johab": "JOHAB", "muleinternal": "MULE_INTERNAL",
}

// Lookup finds a client encoding by any name PostgreSQL accepts for it
// (case and punctuation do not matter: "shift_jis", "Latin-1"). An unknown
// name is 22023 as PostgreSQL says it; a PostgreSQL encoding pgwarden
// cannot convert is 0A000 with PostgreSQL's wording for a missing
// conversion.
func Lookup(name string) (*Encoding, *pgerr.Error) {
	key := clean(name)
	e, known := byName[key]
	switch {
	case !known || len(name) >= 64: // NAMEDATALEN, as pg_char_to_encoding
		return nil, pgerr.New(pgerr.InvalidParameterValue, "invalid value for parameter \"client_encoding\": \"%s\"", name)
	case e == nil:
		return nil, pgerr.Unsupported("conversion between %s and UTF8 is not supported", unsupportedName[key])
	}
	return e, nil
}

// clean is PostgreSQL's clean_encoding_name: ASCII letters and digits only,
// lower case.
func clean(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	return b.String()
}

// ascii reports whether b is all ASCII, which every supported encoding
// shares with UTF-8 byte for byte.
func ascii[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// ValidUTF8 checks text from a UTF8 or SQL_ASCII client; PostgreSQL checks
// SQL_ASCII clients' text against the server encoding, UTF8 for a warehouse.
func ValidUTF8(s string) *pgerr.Error {
	if utf8.ValidString(s) {
		return nil
	}
	for i := 0; i < len(s); {
		n, ok := utf8Char([]byte(s[i:min(len(s), i+4)]))
		if !ok {
			return invalidSequence(UTF8, []byte(s[i:]))
		}
		i += n
	}
	return nil
}

// DecodeString converts a client's text to UTF-8. Text that needs no
// change (UTF8 clients, ASCII) is returned as is, without copying.
func (e *Encoding) DecodeString(s string) (string, *pgerr.Error) {
	if e.conv == nil {
		return s, ValidUTF8(s)
	}
	if ascii(s) {
		return s, nil
	}
	out, err := e.decode([]byte(s))
	return string(out), err
}

// Decode is DecodeString for bytes; b is returned when nothing changes.
func (e *Encoding) Decode(b []byte) ([]byte, *pgerr.Error) {
	if e.conv == nil {
		if utf8.Valid(b) {
			return b, nil
		}
		return b, ValidUTF8(string(b))
	}
	if ascii(b) {
		return b, nil
	}
	return e.decode(b)
}

func (e *Encoding) decode(b []byte) ([]byte, *pgerr.Error) {
	for i := 0; i < len(b); {
		n, ok := e.char(b[i:])
		if !ok {
			return nil, invalidSequence(e, b[i:])
		}
		i += n
	}
	out, _, err := transform.Bytes(e.conv.NewDecoder(), b)
	if err == nil && !bytes.ContainsRune(out, utf8.RuneError) {
		return out, nil
	}
	// A character x/text has no mapping for decodes as U+FFFD: find it
	// (unless the input really says U+FFFD, which GB18030 can).
	dec := e.conv.NewDecoder()
	for i := 0; i < len(b); {
		n, _ := e.char(b[i:])
		c, _, err := transform.Bytes(dec, b[i:i+n])
		if err != nil || bytes.ContainsRune(c, utf8.RuneError) && !(e.Name == "GB18030" && bytes.Equal(b[i:i+n], []byte{0x84, 0x31, 0xa4, 0x37})) {
			return nil, untranslatable(e.Name, "UTF8", b[i:i+n])
		}
		i += n
	}
	return out, nil
}

// Encode converts UTF-8 text for the client: 22P05 names the first
// character the client's encoding lacks. b is returned when nothing changes.
func (e *Encoding) Encode(b []byte) ([]byte, *pgerr.Error) {
	if e.conv == nil || ascii(b) {
		return b, nil
	}
	out, _, err := transform.Bytes(e.conv.NewEncoder(), b)
	if err == nil && e.wellFormed(out) && e.decodesTo(out, b) {
		return out, nil
	}
	enc := e.conv.NewEncoder()
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return nil, invalidSequence(UTF8, b[i:])
		}
		c, _, err := transform.Bytes(enc, utf8.AppendRune(buf[:0], r))
		if err != nil || !e.wellFormed(c) || !e.decodesTo(c, b[i:i+n]) {
			return nil, untranslatable("UTF8", e.Name, b[i:i+n])
		}
		i += n
	}
	return out, nil
}

// decodesTo reports whether a multi-byte encoding's bytes read back as
// want: x/text's tables are not all one-to-one (its GB18030 encodes
// U+E6A8 as 0x83 0x39 0xc5 0x31, which it decodes as U+F6BC), and a client
// must not read a character other than the warehouse's.
func (e *Encoding) decodesTo(out, want []byte) bool {
	if e.single {
		return true
	}
	back, _, err := transform.Bytes(e.conv.NewDecoder(), out)
	return err == nil && bytes.Equal(back, want)
}

// EncodeString is Encode for a string.
func (e *Encoding) EncodeString(s string) (string, *pgerr.Error) {
	if e.conv == nil || ascii(s) {
		return s, nil
	}
	out, err := e.Encode([]byte(s))
	return string(out), err
}

// EncodeLossy converts message text (errors, notices, names) for the
// client, with '?' for a character the encoding lacks: a message must
// reach the client even when it quotes such a character.
func (e *Encoding) EncodeLossy(s string) string {
	out, err := e.EncodeString(s)
	if err == nil {
		return out
	}
	var b []byte
	for _, r := range s {
		c, err := e.Encode(utf8.AppendRune(nil, r))
		if err != nil {
			c = []byte{'?'}
		}
		b = append(b, c...)
	}
	return string(b)
}

// wellFormed checks x/text's output against the encoding's own structure
// (EUC_CN and EUC_KR are narrower than the GBK and UHC they encode with).
func (e *Encoding) wellFormed(b []byte) bool {
	for i := 0; i < len(b); {
		n, ok := e.char(b[i:])
		if !ok {
			return false
		}
		i += n
	}
	return true
}

// invalidSequence is PostgreSQL's report_invalid_encoding: the bytes of the
// character b starts with (at most 8).
func invalidSequence(e *Encoding, b []byte) *pgerr.Error {
	n, _ := e.char(b)
	return pgerr.New(CharacterNotInRepertoire, "invalid byte sequence for encoding \"%s\": %s", e.Name, hexBytes(b[:min(n, len(b), 8)]))
}

// untranslatable is PostgreSQL's report_untranslatable_char.
func untranslatable(from, to string, b []byte) *pgerr.Error {
	return pgerr.New(UntranslatableCharacter, "character with byte sequence %s in encoding \"%s\" has no equivalent in encoding \"%s\"", hexBytes(b[:min(len(b), 8)]), from, to)
}

func hexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("0x%02x", c)
	}
	return strings.Join(parts, " ")
}

// The character structures below follow PostgreSQL's pg_*_verifychar in
// src/common/wchar.c; the length is its mblen, also for a malformed
// character, which the error message then quotes in full.

func utf8Char(b []byte) (int, bool) {
	c := b[0]
	n := 1
	switch {
	case c < 0x80:
		return 1, true
	case c&0xe0 == 0xc0:
		n = 2
	case c&0xf0 == 0xe0:
		n = 3
	case c&0xf8 == 0xf0:
		n = 4
	default:
		return 1, false
	}
	if len(b) < n {
		return n, false
	}
	r, size := utf8.DecodeRune(b[:n])
	return n, !(r == utf8.RuneError && size <= 1) && size == n
}

func singleChar([]byte) (int, bool) { return 1, true }

func inRange(c, lo, hi byte) bool { return c >= lo && c <= hi }

// eucChar: EUC_CN, EUC_KR (two bytes of 0xa1..0xfe).
func eucChar(b []byte) (int, bool) {
	if b[0] < 0x80 {
		return 1, true
	}
	if len(b) < 2 {
		return 2, false
	}
	return 2, inRange(b[0], 0xa1, 0xfe) && inRange(b[1], 0xa1, 0xfe)
}

func eucJPChar(b []byte) (int, bool) {
	switch c := b[0]; {
	case c < 0x80:
		return 1, true
	case c == 0x8e: // SS2: half-width katakana
		return 2, len(b) >= 2 && inRange(b[1], 0xa1, 0xdf)
	case c == 0x8f: // SS3: JIS X 0212
		return 3, len(b) >= 3 && inRange(b[1], 0xa1, 0xfe) && inRange(b[2], 0xa1, 0xfe)
	default:
		return 2, len(b) >= 2 && inRange(c, 0xa1, 0xfe) && inRange(b[1], 0xa1, 0xfe)
	}
}

func sjisChar(b []byte) (int, bool) {
	c := b[0]
	if !(inRange(c, 0x81, 0x9f) || inRange(c, 0xe0, 0xfc)) {
		return 1, true // ASCII, half-width katakana, or a byte with no mapping (22P05)
	}
	if len(b) < 2 {
		return 2, false
	}
	return 2, inRange(b[1], 0x40, 0x7e) || inRange(b[1], 0x80, 0xfc)
}

// dbcsChar: BIG5, GBK, UHC (a high lead byte and any non-NUL byte).
func dbcsChar(b []byte) (int, bool) {
	if b[0] < 0x80 {
		return 1, true
	}
	return 2, len(b) >= 2 && b[1] != 0
}

func gb18030Char(b []byte) (int, bool) {
	if b[0] < 0x80 {
		return 1, true
	}
	if len(b) >= 2 && inRange(b[1], 0x30, 0x39) {
		return 4, len(b) >= 4 && inRange(b[0], 0x81, 0xfe) && inRange(b[2], 0x81, 0xfe) && inRange(b[3], 0x30, 0x39)
	}
	return 2, len(b) >= 2 && inRange(b[0], 0x81, 0xfe) && (inRange(b[1], 0x40, 0x7e) || inRange(b[1], 0x80, 0xfe))
}
