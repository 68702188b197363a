// Command release sets the version at which idemkit's modules require each
// other, prints the tags of a release, and checks that the published
// modules can be fetched and used the way a user does: from a module proxy,
// with no workspace and no replace lines. See RELEASING.md.
//
//	go run ./tools/release set VERSION   rewrite sibling requirements, print the tags
//	go run ./tools/release tags          print the tags for the current version
//	go run ./tools/release tidy [DIR…]   go mod tidy modules that require unpublished siblings
//	go run ./tools/release check         build a file-system proxy from the tree and run the consumers
//
// It is run from the repository root (the directory of go.work).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ws, err := loadWorkspace(".")
	if err != nil {
		fatal(err)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "set":
		if len(args) != 1 {
			usage()
		}
		err = ws.setVersion(args[0])
		if err == nil {
			ws, err = loadWorkspace(".")
		}
		if err == nil {
			err = ws.printTags()
		}
	case "tags":
		err = ws.printTags()
	case "tidy":
		err = ws.tidy(args)
	case "check":
		err = ws.check(args)
	default:
		usage()
	}
	if err != nil {
		fatal(err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go run ./tools/release set VERSION | tags | tidy [DIR...] | check [-keep]")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}
