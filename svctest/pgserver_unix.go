//go:build unix

package svctest

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// postgresUser returns the uid and gid of the "postgres" system user when
// the test runs as root (PostgreSQL refuses to run as root), else ok=false.
func postgresUser() (uid, gid int, ok bool) {
	if os.Geteuid() != 0 {
		return 0, 0, false
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	return uid, gid, err1 == nil && err2 == nil
}

// prepareDir hands the server's directory to the postgres user when needed.
func prepareDir(dir string) error {
	uid, gid, ok := postgresUser()
	if !ok {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

func runAsPostgres(cmd *exec.Cmd) {
	uid, gid, ok := postgresUser()
	if !ok {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(cmd.Env, "HOME="+cmd.Dir, "USER=postgres")
}
