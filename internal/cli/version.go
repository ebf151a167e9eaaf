package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what the binary knows of its own build.
type buildInfo struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
}

// version and revision are stamped at link time, when the build has them
// but Go cannot record them: the Dockerfile's VERSION and REVISION build
// arguments (the image's context has no .git) and make build's git
// describe, with -ldflags "-X github.com/segpub/segpub/internal/cli.version=v1.2.3".
// Empty: what Go recorded.
var version, revision string

// readBuildInfo reads the module version and, when the build recorded
// them, the VCS revision, its time and whether the tree was modified; a
// stamped version or revision wins.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{Main: debug.Module{Path: "github.com/segpub/segpub", Version: "unknown"}}
	}
	info := buildInfo{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	if version != "" {
		info.Version = version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if revision != "" && info.Revision == "" {
		info.Revision = revision
	}
	return info
}

func (i buildInfo) String() string {
	s := fmt.Sprintf("segpub %s (%s, %s)", i.Version, i.Module, i.GoVersion)
	if i.Revision != "" {
		s += fmt.Sprintf("\nrevision %s", i.Revision)
		if i.Time != "" {
			s += " of " + i.Time
		}
		if i.Modified {
			s += ", modified"
		}
	}
	return s
}

func (a *App) versionCmd() *cobra.Command {
	cmd, _ := a.newCmd("version", "print segpub's version: module version and the VCS revision it was built from")
	asJSON := cmd.Flags().Bool("json", false, "print JSON")
	cmd.RunE = a.action(nil, noArgs, func(_ context.Context, _ []string) int {
		info := readBuildInfo()
		if *asJSON {
			printJSON(a.env.Stdout, info)
		} else {
			fmt.Fprintln(a.env.Stdout, info)
		}
		return ExitOK
	})
	return cmd
}
