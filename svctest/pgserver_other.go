//go:build !unix

package svctest

import "os/exec"

func prepareDir(string) error { return nil }
func runAsPostgres(*exec.Cmd) {}
