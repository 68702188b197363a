package readme

import (
	"os"
	"strings"
	"testing"
)

// TestSnippets checks that every Go block of README.md appears in this
// package's files, which the build compiles: word for word, either at the
// top level or indented by one tab as a function body.
func TestSnippets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	for _, f := range []string{"snippets.go", "snippets_test.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	blocks := strings.Split(string(readme), "```go\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("README.md has no Go block")
	}
	for _, b := range blocks {
		b, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("unterminated Go block in README.md:\n%s", b)
		}
		var indented strings.Builder
		for _, line := range strings.SplitAfter(b, "\n") {
			if strings.TrimSpace(line) != "" {
				indented.WriteString("\t")
			}
			indented.WriteString(line)
		}
		if !strings.Contains(code.String(), indented.String()) && !strings.Contains(code.String(), b) {
			t.Errorf("README.md's Go block is not in snippets.go or snippets_test.go, so nothing checks that it compiles:\n%s", b)
		}
	}
}
