package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

func netDialer() *net.Dialer { return &net.Dialer{Timeout: time.Second} }

// findPgbouncer returns the pgbouncer binary, installing Debian's package with
// apt-get when it is missing and we are root. Otherwise it says exactly what to
// install.
func findPgbouncer(ctx context.Context, log io.Writer) (string, error) {
	look := func() (string, bool) {
		if p, err := exec.LookPath("pgbouncer"); err == nil {
			return p, true
		}
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
			return "/usr/sbin/pgbouncer", true
		}
		return "", false
	}
	if p, ok := look(); ok {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("pgbouncer is not installed: run `sudo apt-get update && sudo apt-get install -y pgbouncer` (Debian/Ubuntu) and rerun")
	}
	fmt.Fprintln(log, "installing pgbouncer with apt-get …")
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "pgbouncer"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 1000))
		}
	}
	// Debian's package starts a system-wide PgBouncer on port 6432; the bench
	// runs its own, so stop that one again.
	if _, err := os.Stat("/etc/init.d/pgbouncer"); err == nil {
		exec.CommandContext(ctx, "/etc/init.d/pgbouncer", "stop").Run()
	}
	if p, ok := look(); ok {
		return p, nil
	}
	return "", errors.New("apt-get installed pgbouncer but the binary is not on PATH or in /usr/sbin")
}

// pgbouncerVersion returns e.g. "1.18.0".
func pgbouncerVersion(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return ""
	}
	if m := regexp.MustCompile(`\d+\.\d+(\.\d+)?`).Find(out); m != nil {
		return string(m)
	}
	return strings.TrimSpace(string(out))
}

// versionAtLeast compares dotted versions numerically.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// bouncer is one running PgBouncer.
type bouncer struct {
	Port     int
	Mode     string // pool_mode
	PoolSize int
	cmd      *exec.Cmd
	dir      string
	exited   chan struct{} // closed when the process has exited
}

// bouncerOptions configure startBouncer.
type bouncerOptions struct {
	Bin       string
	Mode      string // transaction or session
	PoolSize  int
	Version   string
	Databases []string
	Users     map[string]string // name -> password
}

// startBouncer runs PgBouncer in the foreground as a child process with a
// generated ini and userlist, in front of cluster pg.
func startBouncer(ctx context.Context, pg *pgcluster.Cluster, work string, o bouncerOptions) (*bouncer, error) {
	dir, err := os.MkdirTemp(work, "pgbouncer-"+o.Mode+"-")
	if err != nil {
		return nil, err
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	var ini strings.Builder
	ini.WriteString("[databases]\n")
	for _, db := range o.Databases {
		fmt.Fprintf(&ini, "%s = host=%s port=%d dbname=%s\n", db, pg.Host, pg.Port, db)
	}
	fmt.Fprintf(&ini, `[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = 10000
max_db_connections = 0
server_lifetime = 3600
server_idle_timeout = 600
logfile = %s
pidfile = %s
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
`, port, filepath.Join(dir, "userlist.txt"), o.Mode, o.PoolSize, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	// PgBouncer 1.21 added protocol-level prepared statements in transaction mode.
	if versionAtLeast(o.Version, 1, 21) {
		ini.WriteString("max_prepared_statements = 200\n")
	}
	var users strings.Builder
	for name, pw := range o.Users {
		fmt.Fprintf(&users, "%q %q\n", name, pw)
	}
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(users.String()), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Bin, iniPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	// PgBouncer refuses to run as root: run it as the postgres system user, the
	// same one the cluster runs as.
	if os.Geteuid() == 0 {
		cred, err := systemUser("postgres")
		if err != nil {
			return nil, err
		}
		for _, p := range []string{dir, iniPath, filepath.Join(dir, "userlist.txt")} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
		// The scratch directory itself must be traversable.
		os.Chmod(work, 0o755)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	b := &bouncer{Port: port, Mode: o.Mode, PoolSize: o.PoolSize, cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(b.exited) }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitTCPWhile(ctx, addr, 15*time.Second, b.exited); err != nil {
		b.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
		return nil, fmt.Errorf("pgbouncer did not start: %w: %s", err, tail(string(log), 1500))
	}
	return b, nil
}

func (b *bouncer) pid() int { return b.cmd.Process.Pid }

func (b *bouncer) stop() {
	if b == nil || b.cmd.Process == nil {
		return
	}
	stopChild(b.cmd.Process, b.exited, syscall.SIGINT, 5*time.Second)
}

func systemUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root needs a %q system user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prewarm fills a PgBouncer's server pool before it is measured: PgBouncer
// opens server connections one at a time, each with a SCRAM handshake, which
// would otherwise land inside the first timed run. n clients each hold a
// transaction open briefly at the same time, so the pool grows to
// min(n, pool size).
func prewarm(ctx context.Context, ep endpoint, n int) error {
	connStr := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=30",
		ep.Port, ep.User, ep.Password, ep.DB)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			c, err := pgconn.Connect(ctx, connStr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			_, err = c.Exec(ctx, "SELECT pg_sleep(0.2)").ReadAll()
			errs <- err
		}()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
