package pgenc

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ name, want, code string }{
		{"UTF8", "UTF8", ""}, {"unicode", "UTF8", ""}, {"utf-8", "UTF8", ""},
		{"SQL_ASCII", "SQL_ASCII", ""}, {"latin1", "LATIN1", ""}, {"ISO-8859-1", "LATIN1", ""},
		{"iso_8859_15", "LATIN9", ""}, {"win", "WIN1251", ""}, {"Windows-1252", "WIN1252", ""},
		{"shift_jis", "SJIS", ""}, {"mskanji", "SJIS", ""}, {"euc-jp", "EUC_JP", ""}, {"EUC_CN", "EUC_CN", ""},
		{"euc_kr", "EUC_KR", ""}, {"big5", "BIG5", ""}, {"win936", "GBK", ""}, {"windows949", "UHC", ""},
		{"GB18030", "GB18030", ""}, {"koi8", "KOI8R", ""}, {"KOI8-U", "KOI8U", ""}, {"iso_8859_5", "ISO_8859_5", ""},
		{"tcvn", "WIN1258", ""}, {"alt", "WIN866", ""}, {"WIN874", "WIN874", ""},
		{"JOHAB", "", "0A000"}, {"EUC_TW", "", "0A000"}, {"SHIFT_JIS_2004", "", "0A000"}, {"EUC_JIS_2004", "", "0A000"},
		{"MULE_INTERNAL", "", "0A000"}, {"FOO", "", "22023"}, {"", "", "22023"}, {"auto", "", "22023"},
	} {
		e, err := Lookup(tc.name)
		switch {
		case tc.code != "":
			if err == nil || err.Code != tc.code {
				t.Errorf("Lookup(%q) = %v, %v; want %s", tc.name, e, err, tc.code)
			}
		case err != nil || e.Name != tc.want:
			t.Errorf("Lookup(%q) = %v, %v; want %s", tc.name, e, err, tc.want)
		}
	}
	if _, err := Lookup("FOO"); err.Message != `invalid value for parameter "client_encoding": "FOO"` {
		t.Errorf("message %q", err.Message)
	}
	if _, err := Lookup("johab"); err.Message != `conversion between JOHAB and UTF8 is not supported` {
		t.Errorf("message %q", err.Message)
	}
}

func mustLookup(t testing.TB, name string) *Encoding {
	e, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct {
		enc    string
		client []byte
		utf8   string
	}{
		{"LATIN1", []byte("caf\xe9 \xfc"), "café ü"},
		{"WIN1252", []byte("\x80 \x93x\x94"), "€ “x”"},
		{"SJIS", []byte("\x93\xfa\x96\x7b \\"), "日本 \\"},
		{"EUC_JP", []byte("\xc6\xfc\xcb\xdc"), "日本"},
		{"GBK", []byte("\xd6\xd0\\'"), "中\\'"},
		{"BIG5", []byte("\xa4\xa4"), "中"},
		{"UHC", []byte("\xc7\xd1"), "한"},
		{"EUC_KR", []byte("\xc7\xd1"), "한"},
		{"EUC_CN", []byte("\xd6\xd0"), "中"},
		{"GB18030", []byte("\x81\x30\x81\x30"), "\u0080"},
		{"KOI8R", []byte("\xf0\xd2\xc9"), "При"},
		{"UTF8", []byte("中"), "中"},
	} {
		e := mustLookup(t, tc.enc)
		got, err := e.Decode(tc.client)
		if err != nil || string(got) != tc.utf8 {
			t.Errorf("%s: Decode(%x) = %q, %v; want %q", tc.enc, tc.client, got, err, tc.utf8)
		}
		back, err := e.Encode([]byte(tc.utf8))
		if err != nil || !bytes.Equal(back, tc.client) {
			t.Errorf("%s: Encode(%q) = %x, %v; want %x", tc.enc, tc.utf8, back, err, tc.client)
		}
	}
}

func TestConversionErrors(t *testing.T) {
	for _, tc := range []struct {
		enc, dir string
		in       []byte
		code     string
		msg      string
	}{
		{"UTF8", "decode", []byte("a\xff"), "22021", `invalid byte sequence for encoding "UTF8": 0xff`},
		{"UTF8", "decode", []byte("a\xe4\xb8"), "22021", `invalid byte sequence for encoding "UTF8": 0xe4 0xb8`},
		{"SQL_ASCII", "decode", []byte("\xc3("), "22021", `invalid byte sequence for encoding "UTF8": 0xc3 0x28`},
		{"SJIS", "decode", []byte("\x82\x20"), "22021", `invalid byte sequence for encoding "SJIS": 0x82 0x20`},
		{"SJIS", "decode", []byte("\x82"), "22021", `invalid byte sequence for encoding "SJIS": 0x82`},
		{"EUC_JP", "decode", []byte("\xa4\x41"), "22021", `invalid byte sequence for encoding "EUC_JP": 0xa4 0x41`},
		{"EUC_CN", "decode", []byte("\x81\x40"), "22021", `invalid byte sequence for encoding "EUC_CN": 0x81 0x40`},
		{"GB18030", "decode", []byte("\x81\x30\x20"), "22021", `invalid byte sequence for encoding "GB18030": 0x81 0x30 0x20`},
		{"WIN1252", "decode", []byte("\x81"), "22P05", `character with byte sequence 0x81 in encoding "WIN1252" has no equivalent in encoding "UTF8"`},
		{"SJIS", "decode", []byte("\x85\x40"), "22P05", `character with byte sequence 0x85 0x40 in encoding "SJIS" has no equivalent in encoding "UTF8"`},
		{"LATIN1", "encode", []byte("a中"), "22P05", `character with byte sequence 0xe4 0xb8 0xad in encoding "UTF8" has no equivalent in encoding "LATIN1"`},
		{"EUC_CN", "encode", []byte("丂"), "22P05", `character with byte sequence 0xe4 0xb8 0x82 in encoding "UTF8" has no equivalent in encoding "EUC_CN"`},
		{"SJIS", "encode", []byte("é"), "22P05", `character with byte sequence 0xc3 0xa9 in encoding "UTF8" has no equivalent in encoding "SJIS"`},
		// x/text encodes it as a sequence it decodes as U+F6BC.
		{"GB18030", "encode", []byte("\ue6a8"), "22P05", `character with byte sequence 0xee 0x9a 0xa8 in encoding "UTF8" has no equivalent in encoding "GB18030"`},
	} {
		e := mustLookup(t, tc.enc)
		var err error
		if tc.dir == "decode" {
			_, pe := e.Decode(tc.in)
			if pe != nil {
				err = pe
			}
			if _, pe := e.DecodeString(string(tc.in)); pe == nil || pe.Message != tc.msg {
				t.Errorf("%s DecodeString(%x) = %v", tc.enc, tc.in, pe)
			}
		} else {
			_, pe := e.Encode(tc.in)
			if pe != nil {
				err = pe
			}
		}
		if err == nil {
			t.Errorf("%s %s(%x): no error, want %s", tc.enc, tc.dir, tc.in, tc.code)
			continue
		}
		if pe := err.(interface{ SQLState() string }); pe.SQLState() != tc.code || err.Error() != tc.msg+" (SQLSTATE "+tc.code+")" {
			t.Errorf("%s %s(%x) = %v; want %s %s", tc.enc, tc.dir, tc.in, err, tc.code, tc.msg)
		}
	}
	if got := mustLookup(t, "LATIN1").EncodeLossy("é中"); got != "\xe9?" {
		t.Errorf("EncodeLossy = %q", got)
	}
}

// The UTF8 path neither copies nor allocates.
func TestUTF8NoAlloc(t *testing.T) {
	s := "SELECT 'café', 中 FROM t WHERE x = 1"
	b := []byte(s)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := UTF8.DecodeString(s); err != nil {
			t.Fatal(err)
		}
		if _, err := UTF8.Decode(b); err != nil {
			t.Fatal(err)
		}
		if _, err := UTF8.Encode(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// Supported lists every encoding Lookup knows, for tests and fuzzing.
func supported() []*Encoding {
	seen := map[*Encoding]bool{}
	var out []*Encoding
	for _, e := range byName {
		if e != nil && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// Client text that decodes encodes back to itself, and UTF-8 text that
// encodes decodes back to itself, in every encoding.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "abc", "caf\xe9", "\x93\xfa\x96\x7b", "\xd6\xd0\\'", "中\\'", "é€“”", "\x81\x30\x81\x30", "한국어", "При"} {
		f.Add([]byte(s))
	}
	encs := supported()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range encs {
			if u, err := e.Decode(b); err == nil {
				if !utf8.Valid(u) {
					t.Fatalf("%s: Decode(%x) = %x: not UTF-8", e.Name, b, u)
				}
				back, err := e.Encode(u)
				if err != nil {
					// Several client sequences may map to one character
					// (x/text decodes some extensions it does not encode).
					continue
				}
				if u2, err := e.Decode(back); err != nil || !bytes.Equal(u2, u) {
					t.Fatalf("%s: %x -> %q -> %x -> %q, %v", e.Name, b, u, back, u2, err)
				}
			}
			if utf8.Valid(b) {
				if c, err := e.Encode(b); err == nil {
					u, err := e.Decode(c)
					if err != nil || !bytes.Equal(u, b) {
						t.Fatalf("%s: %q -> %x -> %q, %v", e.Name, b, c, u, err)
					}
				}
			}
		}
	})
}
