package core_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// TestInvalidKeyDetailEchoesNoPartOfTheKey sends keys made of distinctive
// characters, each refused for a different reason, and checks that the
// problem detail holds none of their bytes beyond the generic ones its own
// words are made of (letters, digits, space, '.', ':', '-'):
// docs/problems.md promises the detail never contains the key.
func TestInvalidKeyDetailEchoesNoPartOfTheKey(t *testing.T) {
	long := strings.Repeat("~", 256)
	cases := []struct {
		name   string
		fields []string
		strict bool
	}{
		{"QuoteInBareKey", []string{`ab"cd`}, false},
		{"DelimitersInBareKey", []string{`~(<@>)~`}, false},
		{"BracesInBareKey", []string{`{[?=]}`}, false},
		{"BackslashInBareKey", []string{`~\~`}, false},
		{"SpaceInBareKey", []string{`~~ ~~`}, false},
		{"ParametersOnBareKey", []string{`~~;v=~`}, false},
		{"ListOfBareKeys", []string{`~~,^^`}, false},
		{"NonASCIIBareKey", []string{"~\u00e9~"}, false},
		{"ControlInBareKey", []string{"~\x01~"}, false},
		{"DeleteInBareKey", []string{"~\x7f~"}, false},
		{"ParametersOnQuotedKey", []string{`"~@~";v=!`}, false},
		{"TrailingAfterQuotedKey", []string{`"~@~"!!`}, false},
		{"UnterminatedQuotedKey", []string{`"~@{}`}, false},
		{"InvalidEscape", []string{`"~\@~"`}, false},
		{"UnterminatedEscape", []string{`"~@\`}, false},
		{"NonASCIIQuotedKey", []string{"\"~\u00e9@\""}, false},
		{"ControlInQuotedKey", []string{"\"~@\x02\""}, false},
		{"TooLong", []string{long}, false},
		{"TooLongQuoted", []string{`"` + long + `"`}, false},
		{"BareInStrictMode", []string{`~@~`}, true},
		{"TwoFields", []string{`"~@~"`, `"^{}^"`}, false},
		{"EmptyQuoted", []string{`""`}, false},
	}
	generic := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(" .:-", c) >= 0
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []core.Option
			if tc.strict {
				opts = append(opts, core.WithStrictKeys(true))
			}
			e := core.New(newStore(t), opts...)
			x := newFake("", "{}", created)
			for _, f := range tc.fields {
				x.header.Add(core.KeyHeader, f)
			}
			e.Serve(x)
			if x.sent == nil || x.sent.Status != 400 {
				t.Fatalf("fields %q: sent %+v; want 400 invalid-key", tc.fields, x.sent)
			}
			var p core.Problem
			if err := json.Unmarshal(x.sent.Body, &p); err != nil || p.Code != core.CodeInvalidKey {
				t.Fatalf("fields %q: problem %q (%v); want code %q", tc.fields, x.sent.Body, err, core.CodeInvalidKey)
			}
			if p.Detail == "" {
				t.Errorf("fields %q: empty detail; want the reason", tc.fields)
			}
			for _, f := range tc.fields {
				for i := 0; i < len(f); i++ {
					if c := f[i]; !generic(c) && strings.IndexByte(p.Detail, c) >= 0 {
						t.Errorf("fields %q: detail %q contains byte %#x of the key; the detail must never echo the key (docs/problems.md)", tc.fields, p.Detail, c)
					}
				}
			}
		})
	}
}
