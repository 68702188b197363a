package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		strict  bool
		want    string
		wantErr error
	}{
		{"quoted uuid", []string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, false, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		{"bare uuid", []string{`8e03978e-40d5-43e8-bc93-6894a57f9324`}, false, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		{"bare leading digit", []string{"123abc"}, false, "123abc", nil},
		{"bare colon slash", []string{"order:42/v1"}, false, "order:42/v1", nil},
		{"bare tchar", []string{"a!#$%&'*+-.^_`|~z"}, false, "a!#$%&'*+-.^_`|~z", nil},
		{"quoted spaces", []string{`"a b c"`}, false, "a b c", nil},
		{"quoted escapes", []string{`"a\"b\\c"`}, false, `a"b\c`, nil},
		{"surrounding OWS", []string{" \t\"abc\" "}, false, "abc", nil},
		{"strict quoted", []string{`"abc"`}, true, "abc", nil},
		{"max length", []string{strings.Repeat("k", 255)}, false, strings.Repeat("k", 255), nil},

		{"missing", nil, false, "", core.ErrMissingKey},
		{"two fields", []string{`"a"`, `"b"`}, false, "", core.ErrInvalidKey},
		{"empty bare", []string{""}, false, "", core.ErrInvalidKey},
		{"only spaces", []string{"   "}, false, "", core.ErrInvalidKey},
		{"empty quoted", []string{`""`}, false, "", core.ErrInvalidKey},
		{"too long", []string{strings.Repeat("k", 256)}, false, "", core.ErrInvalidKey},
		{"too long quoted", []string{`"` + strings.Repeat("k", 256) + `"`}, false, "", core.ErrInvalidKey},
		{"strict bare", []string{"abc"}, true, "", core.ErrInvalidKey},
		{"unterminated", []string{`"abc`}, false, "", core.ErrInvalidKey},
		{"bad escape", []string{`"a\nb"`}, false, "", core.ErrInvalidKey},
		{"trailing backslash", []string{`"abc\`}, false, "", core.ErrInvalidKey},
		{"parameters", []string{`"abc";v=1`}, false, "", core.ErrInvalidKey},
		{"bare parameters", []string{`abc;v=1`}, false, "", core.ErrInvalidKey},
		{"trailing junk", []string{`"abc"x`}, false, "", core.ErrInvalidKey},
		{"list", []string{`"a", "b"`}, false, "", core.ErrInvalidKey},
		{"bare list", []string{`a,b`}, false, "", core.ErrInvalidKey},
		{"control in quoted", []string{"\"a\x01b\""}, false, "", core.ErrInvalidKey},
		{"DEL in bare", []string{"a\x7fb"}, false, "", core.ErrInvalidKey},
		{"non-ASCII quoted", []string{"\"caf\xc3\xa9\""}, false, "", core.ErrInvalidKey},
		{"non-ASCII bare", []string{"caf\xc3\xa9"}, false, "", core.ErrInvalidKey},
		{"bare space inside", []string{"a b"}, false, "", core.ErrInvalidKey},
		{"bare quote inside", []string{`a"b`}, false, "", core.ErrInvalidKey},
		{"byte string", []string{`:YWJj:`}, false, ":YWJj:", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := core.ParseKey(tc.values, tc.strict, core.DefaultMaxKeyLength)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseKey(%q) = %q, %v; want error %v", tc.values, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseKey(%q) = %q, %v; want %q", tc.values, got, err, tc.want)
			}
		})
	}
}

func TestParseKeyErrorNeverEchoesKey(t *testing.T) {
	secret := "s3cr3t-k3y"
	for _, v := range []string{`"` + secret, secret + " x", `"` + secret + `";p=1`, strings.Repeat(secret, 40), secret + "\x01"} {
		_, err := core.ParseKey([]string{v}, false, core.DefaultMaxKeyLength)
		if err == nil {
			t.Fatalf("ParseKey(%q) accepted an invalid key", v)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseKey(%q) error %q echoes the key", v, err)
		}
	}
}

func TestFormatKeyRoundTrip(t *testing.T) {
	for _, k := range []string{"abc", `a"b`, `a\b`, "with space", `\"\\`, "~!@#$%^&*()"} {
		got, err := core.ParseKey([]string{core.FormatKey(k)}, true, core.DefaultMaxKeyLength)
		if err != nil || got != k {
			t.Errorf("ParseKey(FormatKey(%q)) = %q, %v; want the key back", k, got, err)
		}
	}
}

// FuzzParseKey proves ParseKey never panics, that every accepted key is 1 to
// 255 printable ASCII characters, and that it round-trips through the
// canonical quoted form (and the bare form, where that is valid).
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, "abc", `"a\"b\\c"`, `""`, `"abc";v=1`, "caf\xc3\xa9", "\"a\x01\"", `a,b`, " \"x\" "} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, strict bool) {
		key, err := core.ParseKey([]string{v}, strict, core.DefaultMaxKeyLength)
		if err != nil {
			if !errors.Is(err, core.ErrInvalidKey) {
				t.Fatalf("ParseKey(%q) error %v does not wrap ErrInvalidKey", v, err)
			}
			return
		}
		if len(key) == 0 || len(key) > core.DefaultMaxKeyLength {
			t.Fatalf("ParseKey(%q) accepted key of length %d", v, len(key))
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) accepted byte %#x", v, key[i])
			}
		}
		again, err := core.ParseKey([]string{core.FormatKey(key)}, true, core.DefaultMaxKeyLength)
		if err != nil || again != key {
			t.Fatalf("quoted round trip of %q: got %q, %v", key, again, err)
		}
		// A bare field loses surrounding whitespace as OWS, and one that
		// starts with '"' is the quoted form, so only other keys can
		// round-trip bare.
		if strings.TrimSpace(key) != key || key[0] == '"' {
			return
		}
		if bare, err := core.ParseKey([]string{key}, false, core.DefaultMaxKeyLength); err == nil && bare != key {
			t.Fatalf("bare round trip of %q: got %q", key, bare)
		}
	})
}

// TestParseKeyBareCharacters checks every byte in a bare key against the
// grammar in its other form: RFC 9110 tchar is any visible ASCII character
// but the delimiters, and a bare key also allows ':' and '/'.
func TestParseKeyBareCharacters(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c > 0x20 && c < 0x7f && !strings.ContainsRune(`"(),;<=>?@[\]{}`, rune(c))
		key := "a" + string([]byte{byte(c)}) + "b"
		got, err := core.ParseKey([]string{key}, false, 255)
		if ok := err == nil && got == key; ok != want {
			t.Errorf("bare key with byte %#02x: accepted = %v (err %v); want %v", c, ok, err, want)
		}
	}
}

// TestParseKeyQuotedBytes puts every byte value at every position of a
// 24-character quoted key (three 8-byte words, then the closing quote)
// and checks ParseKey against the grammar of docs/contract.md C-KEY-1 and
// C-KEY-2, written out byte by byte.
func TestParseKeyQuotedBytes(t *testing.T) {
	const n = 24
	for pos := 0; pos < n; pos++ {
		for c := 0; c < 256; c++ {
			inner := []byte(strings.Repeat("k", n))
			inner[pos] = byte(c)
			v := `"` + string(inner) + `"`
			var want string
			ok := c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
			if ok {
				want = string(inner)
			}
			got, err := core.ParseKey([]string{v}, true, 255)
			if (err == nil) != ok || got != want {
				t.Errorf("quoted key with byte %#02x at %d: got %q, %v; want %q, accepted %v", c, pos, got, err, want, ok)
			}
		}
	}
}
