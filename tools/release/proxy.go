package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// buildProxy writes a file-system module proxy (GOPROXY=file://dir) that
// serves every published module at version from the working tree: for each
// module, @v/list, @v/VERSION.info, .mod and .zip, the zip made by
// golang.org/x/mod/zip as the go command would make it from a tag.
func (ws *workspace) buildProxy(dir, version string) error {
	order, err := ws.published()
	if err != nil {
		return err
	}
	for _, m := range order {
		esc, err := module.EscapePath(m.Path)
		if err != nil {
			return err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		mv := module.Version{Path: m.Path, Version: version}
		zf, err := os.Create(filepath.Join(vdir, version+".zip"))
		if err != nil {
			return err
		}
		err = zip.CreateFromDir(zf, mv, filepath.Join(ws.Root, filepath.FromSlash(m.Dir)))
		if cerr := zf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("zip of %s: %w", m.Dir, err)
		}
		gomod, err := os.ReadFile(filepath.Join(ws.Root, filepath.FromSlash(m.Dir), "go.mod"))
		if err != nil {
			return err
		}
		info, err := json.Marshal(struct {
			Version string
			Time    time.Time
		}{version, time.Now().UTC().Truncate(time.Second)})
		if err != nil {
			return err
		}
		for name, data := range map[string][]byte{
			"list":            []byte(version + "\n"),
			version + ".mod":  gomod,
			version + ".info": info,
		} {
			if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
