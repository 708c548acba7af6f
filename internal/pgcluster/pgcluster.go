// Package pgcluster starts a throwaway PostgreSQL cluster: initdb into a
// temporary directory, a server on a free loopback port, and Stop to remove it
// all. The test suite and `pgwarden demo` both use it. When the process runs as
// root, the server runs as the "postgres" system user, since initdb refuses root.
package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configure a cluster. The zero value is usable.
type Options struct {
	// Port to listen on; 0 picks a free one.
	Port int
	// Dir is where the data directory is created; "" means a new temporary directory
	// that Stop removes.
	Dir string
	// BinDir holds initdb and postgres; "" searches /usr/lib/postgresql/*/bin and PATH.
	BinDir string
	// Settings are extra postgresql.conf lines (name -> value).
	Settings map[string]string
	// Log receives the server's log; nil discards it (it stays in the data directory).
	LogFile string
}

// Cluster is a running throwaway server. Its superuser is "postgres" with
// password Password, reachable over TCP on 127.0.0.1:Port with SCRAM.
type Cluster struct {
	Host       string
	Port       int
	Password   string
	dataDir    string
	rootDir    string
	removeRoot bool
	bin        string
	cred       *syscall.Credential
}

// FindBinDir returns the directory that holds initdb and postgres, preferring
// the newest /usr/lib/postgresql/N/bin, then PATH.
func FindBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or on PATH: install them with `apt-get install postgresql` (Debian/Ubuntu) or run `make deps` as root")
}

func versionOf(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// Start creates and starts a cluster. Stop it with Stop.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	bin := opts.BinDir
	if bin == "" {
		if bin, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Host: "127.0.0.1", bin: bin, Password: randomHex(12)}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	c.rootDir = opts.Dir
	if c.rootDir == "" {
		if c.rootDir, err = os.MkdirTemp("", "pgwarden-pg-"); err != nil {
			return nil, err
		}
		c.removeRoot = true
	} else if err := os.MkdirAll(c.rootDir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.chown(c.rootDir); err != nil {
		return nil, err
	}
	c.dataDir = filepath.Join(c.rootDir, "data")
	pwfile := filepath.Join(c.rootDir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := c.chown(pwfile); err != nil {
		return nil, err
	}
	if out, err := c.command(ctx, "initdb", "-D", c.dataDir, "-U", "postgres", "--pwfile", pwfile,
		"-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	os.Remove(pwfile)

	settings := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "''",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "300",
		"shared_buffers":          "128MB",
		"logging_collector":       "off",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var conf strings.Builder
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&conf, "%s = %s\n", k, settings[k])
	}
	if err := appendFile(filepath.Join(c.dataDir, "postgresql.conf"), conf.String()); err != nil {
		return nil, err
	}

	logFile := opts.LogFile
	if logFile == "" {
		logFile = filepath.Join(c.rootDir, "server.log")
	}
	for attempt := 0; ; attempt++ {
		c.Port = opts.Port
		if c.Port == 0 {
			if c.Port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-l", logFile, "-w", "-t", "60",
			"-o", fmt.Sprintf("-p %d", c.Port), "start").CombinedOutput()
		if err == nil {
			break
		}
		// Another process may have taken the port between FreePort and the bind.
		if opts.Port != 0 || attempt >= 4 {
			log, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("pg_ctl start: %w: %s\n%s", err, strings.TrimSpace(string(out)), tail(string(log), 2000))
		}
	}
	return c, nil
}

// DSN returns a connection URL for database db as the superuser.
func (c *Cluster) DSN(db string) string {
	return c.UserDSN(db, "postgres", c.Password)
}

// UserDSN returns a connection URL for database db as user with password.
func (c *Cluster) UserDSN(db, user, password string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), Path: "/" + db,
		User: url.UserPassword(user, password), RawQuery: "sslmode=disable"}
	return u.String()
}

// DataDir returns the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// Stop shuts the server down immediately and removes what Start created.
func (c *Cluster) Stop() error {
	var err error
	if c.dataDir != "" {
		c.Thaw() // a frozen server cannot stop; not running is fine too
		if _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); statErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if out, e := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop").CombinedOutput(); e != nil {
				err = fmt.Errorf("pg_ctl stop: %w: %s", e, strings.TrimSpace(string(out)))
			}
		}
	}
	if c.removeRoot && c.rootDir != "" {
		if e := os.RemoveAll(c.rootDir); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// Restart stops the server (immediate mode) and starts it again on the same port.
func (c *Cluster) Restart(ctx context.Context) error {
	if out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	if out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-l", filepath.Join(c.rootDir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d", c.Port), "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// StopServer stops the server and leaves the data directory, for
// StartServer to bring it back on the same port: an outage. Fast mode, not
// immediate: with fsync and synchronous_commit off (see Start) only a
// shutdown checkpoint keeps what was committed.
func (c *Cluster) StopServer(ctx context.Context) error {
	if out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// StartServer starts a server stopped by StopServer.
func (c *Cluster) StartServer(ctx context.Context) error {
	if out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir, "-l", filepath.Join(c.rootDir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d", c.Port), "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// Freeze stops every process of the server with SIGSTOP, as a host that
// stops answering: the postmaster first, so that it forks nothing more,
// then every backend and auxiliary process, since stopping only the
// postmaster leaves existing backends answering. The kernel still accepts
// TCP connections into the listen backlog, so connects succeed and then
// nothing answers. Thaw undoes it; Stop thaws first.
func (c *Cluster) Freeze() error { return c.signalAll(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT to all its processes).
func (c *Cluster) Thaw() error { return c.signalAll(syscall.SIGCONT) }

func (c *Cluster) signalAll(sig syscall.Signal) error {
	pm, err := c.postmasterPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pm, sig); err != nil {
		return fmt.Errorf("signal postmaster %d: %w", pm, err)
	}
	// A backend forked just as the postmaster was signalled may not be
	// listed by the first pass: list again until a pass finds none new.
	done := map[int]bool{}
	for {
		kids, err := childPIDs(pm)
		if err != nil {
			return err
		}
		fresh := 0
		for _, pid := range kids {
			if done[pid] {
				continue
			}
			done[pid] = true
			fresh++
			// A backend may have exited meanwhile: ESRCH is no failure.
			if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("signal backend %d: %w", pid, err)
			}
		}
		if fresh == 0 {
			return nil
		}
	}
}

func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("server not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: bad pid %q", first)
	}
	return pid, nil
}

// childPIDs lists the processes whose parent is ppid, from /proc.
func childPIDs(ppid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	closeInheritedOnExec()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = "/"
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl leaves the server running after it returns; don't tie its lifetime to ctx.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	return cmd
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// Go opens its own files that way, but a process may inherit descriptors that
// are not (a `go test -fuzz` worker's pipes to its coordinator, fds 3 and 4);
// the postmaster would hold them open and the coordinator would wait forever.
func closeInheritedOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a \"postgres\" system user to run the server (apt-get install postgresql creates one): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server that binds it a moment later. It comes from below the kernel's
// ephemeral range when there is room there: a port the kernel hands out for
// port 0 is also one it hands out as the local port of an outgoing
// connection, and one of those (any client of a test running alongside)
// taking it before the server binds fails the bind with EADDRINUSE.
func FreePort() (int, error) {
	if lo := ephemeralLow(); lo > 2*minFreePort {
		for range 64 {
			port := minFreePort + mathrand.IntN(lo-minFreePort)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// minFreePort keeps FreePort clear of the ports well-known services use.
const minFreePort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 when
// it cannot be read (not Linux).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
