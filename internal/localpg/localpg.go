// Package localpg starts a private PostgreSQL for `segpub demo` when no
// server answers: initdb into a directory of segpub's (as the postgres OS
// user when running as root, as PostgreSQL requires) and pg_ctl start on a
// free loopback port. scripts/pg-ensure does the same for make and CI.
package localpg

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Ensure returns the URL of a private cluster in dir, creating and
// starting it as needed.
func Ensure(ctx context.Context, dir string, log *slog.Logger) (string, error) {
	bin, err := binDir()
	if err != nil {
		return "", err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root := os.Geteuid() == 0
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		// Parents stay traversable: the server runs as another user.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
		if root {
			if err := chownPostgres(dir); err != nil {
				return "", err
			}
		}
		log.Info("creating a local PostgreSQL cluster", "dir", dir)
		if out, err := run(ctx, root, filepath.Join(bin, "initdb"), "-D", dir, "-U", "postgres", "-A", "trust", "--encoding=UTF8", "--locale=C.UTF-8"); err != nil {
			return "", fmt.Errorf("initdb: %w: %s", err, out)
		}
		port, err := freePort()
		if err != nil {
			return "", err
		}
		conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nshared_buffers = 256MB\njit = off\n", port, dir)
		f, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(conf)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	port, err := portOf(dir)
	if err != nil {
		return "", err
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if answers(port) {
		return url, nil
	}
	log.Info("starting the local PostgreSQL", "port", port)
	if out, err := run(ctx, root, filepath.Join(bin, "pg_ctl"), "-D", dir, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		return "", fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return url, nil
}

func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries in /usr/lib/postgresql; install them (apt-get install postgresql) or set SEGPUB_DATABASE_URL")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func run(ctx context.Context, asPostgres bool, name string, args ...string) (string, error) {
	if asPostgres {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func chownPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres OS user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

func freePort() (int, error) {
	for p := 54329; p < 54429; p++ {
		if !answers(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port in 54329-54428")
}

func answers(port int) bool {
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func portOf(dir string) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "postgresql.conf"))
	if err != nil {
		return 0, err
	}
	port := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "port ="); ok {
			if p, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil {
				port = p
			}
		}
	}
	if port == 0 {
		return 0, fmt.Errorf("no port in %s/postgresql.conf", dir)
	}
	return port, nil
}
