// Package docker_test keeps docker/compose.yaml, docker/pgwarden.yaml and the
// Dockerfile consistent with each other and with the config format, and runs
// what the compose services run, in their order, on this machine: Docker
// need not run here, so this is what stops them from rotting.
package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

type compose struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string                    `yaml:"image"`
	Command     []string                  `yaml:"command"`
	Ports       []string                  `yaml:"ports"`
	Volumes     []string                  `yaml:"volumes"`
	Environment map[string]string         `yaml:"environment"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func TestComposeMatchesConfig(t *testing.T) {
	c := loadCompose(t)
	for _, s := range []string{"warehouse", "keygen", "tickets", "proxy"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("compose.yaml: service %q missing", s)
		}
	}
	raw, err := os.ReadFile("pgwarden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(raw, "/etc/pgwarden/pgwarden.yaml")
	if err != nil {
		t.Fatalf("docker/pgwarden.yaml does not validate: %v", err)
	}
	published := func(service string) map[string]bool {
		m := map[string]bool{}
		for _, p := range c.Services[service].Ports {
			parts := strings.Split(p, ":")
			m[parts[len(parts)-1]] = true
		}
		return m
	}
	port := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		return p
	}
	if p := port(cfg.Proxy.Listen); !published("proxy")[p] {
		t.Errorf("proxy listens on %s but compose's proxy service does not publish it", p)
	}
	if p := port(cfg.Metrics.Listen); !published("proxy")[p] {
		t.Errorf("metrics listen on %s but compose's proxy service does not publish it", p)
	}
	if p := port(cfg.Auth.Listen); !published("tickets")[p] {
		t.Errorf("ticket service listens on %s but compose's tickets service does not publish it", p)
	}
	for _, s := range []string{"tickets", "proxy"} {
		cmd := strings.Join(c.Services[s].Command, " ")
		if !strings.Contains(cmd, "serve --config /etc/pgwarden/pgwarden.yaml --only "+s) {
			t.Errorf("service %s runs %q", s, cmd)
		}
		mounts := strings.Join(c.Services[s].Volumes, " ")
		if !strings.Contains(mounts, ":/etc/pgwarden/policy.yaml") || !strings.Contains(mounts, "keys:/keys") {
			t.Errorf("service %s does not mount the policy and keys: %s", s, mounts)
		}
	}
	if cfg.Warehouses["analytics"].Policy != "/etc/pgwarden/policy.yaml" {
		t.Errorf("warehouse policy = %q", cfg.Warehouses["analytics"].Policy)
	}
	for _, dsn := range []string{cfg.Warehouses["analytics"].DSN, cfg.Auth.StoreDSN} {
		if !strings.Contains(dsn, "@warehouse:5432/") {
			t.Errorf("DSN %q does not point at the compose warehouse service", dsn)
		}
	}
	// Every file compose mounts from the repository exists.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=1", "./cmd/pgwarden", "EXPOSE 6432 8080 9187"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// The demo passwords are in compose.yaml and the proxy takes cleartext
// passwords: nothing may be published beyond loopback.
func TestComposePublishesOnLoopbackOnly(t *testing.T) {
	for name, s := range loadCompose(t).Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on every interface; want 127.0.0.1:HOST:CONTAINER", name, p)
			}
		}
	}
}

// The build context is the repository root: .dockerignore keeps out what is
// not source (.git alone is most of the context).
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			have[strings.TrimPrefix(l, "/")] = true
		}
	}
	for _, want := range []string{".git", "bin", "pgwarden", "bench/out", "compat/clients/node/node_modules"} {
		if !have[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "testdata"} {
		if have[need] {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}

// dockerfileRuns returns the Dockerfile's RUN instructions of its last
// stage, continuation lines joined.
func dockerfileRuns(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(raw), "\\\n", " ")
	var runs []string
	for _, l := range strings.Split(joined, "\n") {
		switch {
		case strings.HasPrefix(l, "FROM "):
			runs = nil
		case strings.HasPrefix(l, "RUN "):
			runs = append(runs, l)
		}
	}
	return runs
}

// TestComposeRunsWithoutDocker does what `docker compose up` does, minus
// Docker: the warehouse's init scripts on a throwaway PostgreSQL, keygen into
// the keys volume (twice: --if-missing keeps the first key), then the tickets
// and proxy services' commands with compose's mounts mapped to a directory
// (the config's hosts and listen addresses mapped to loopback), and the
// ticket flow compose.yaml's header describes.
func TestComposeRunsWithoutDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pgwarden and starts PostgreSQL")
	}
	c := loadCompose(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := t.TempDir()

	// The image's runtime user writes the named volumes: the Dockerfile must
	// create each mount point owned by it (a new named volume copies that).
	runs := strings.Join(dockerfileRuns(t), "\n")
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if _, named := c.Volumes[src]; named && s.Image == "pgwarden:local" && !strings.HasSuffix(v, ":ro") &&
				!strings.Contains(runs, "install -d -o pgwarden -g pgwarden -m 0700 "+dst) {
				t.Errorf("service %s writes volume %s at %s, which the Dockerfile does not create owned by pgwarden", name, src, dst)
			}
		}
	}

	// The warehouse: postgres:15 with POSTGRES_DB and its init scripts, in name order.
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	wh := c.Services["warehouse"]
	db := wh.Environment["POSTGRES_DB"]
	admin, err := pgx.Connect(ctx, cluster.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	bin, err := pgcluster.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	var inits []string
	for _, v := range wh.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/docker-entrypoint-initdb.d/") {
			inits = append(inits, filepath.Base(strings.TrimSuffix(dst, ":ro"))+"\x00"+src)
		}
	}
	sort.Strings(inits)
	for _, in := range inits {
		_, src, _ := strings.Cut(in, "\x00")
		// As the image runs them: psql, stop at the first error.
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
			"-d", cluster.DSN(db), "-f", src).CombinedOutput()
		if err != nil {
			t.Fatalf("warehouse init %s: %v\n%s", src, err, out)
		}
	}

	pgw := filepath.Join(root, "pgwarden")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", pgw, "../cmd/pgwarden").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// mounts maps a service's container paths to places under root: named
	// volumes are shared directories, bind mounts copies of their source.
	mount := func(name string, s service) map[string]string {
		m := map[string]string{}
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst = strings.TrimSuffix(dst, ":ro")
			host := filepath.Join(root, name, dst)
			if _, named := c.Volumes[src]; named {
				host = filepath.Join(root, "volumes", src)
				if err := os.MkdirAll(host, 0o700); err != nil {
					t.Fatal(err)
				}
			} else {
				raw, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(host, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m[dst] = host
		}
		return m
	}
	args := func(s service, m map[string]string) []string {
		out := slices.Clone(s.Command)
		for i, a := range out {
			for dst, host := range m {
				if a == dst || strings.HasPrefix(a, dst+"/") {
					out[i] = host + strings.TrimPrefix(a, dst)
				}
			}
		}
		return out
	}

	keygen := c.Services["keygen"]
	km := mount("keygen", keygen)
	for i := 0; i < 2; i++ {
		if out, err := exec.CommandContext(ctx, pgw, args(keygen, km)...).CombinedOutput(); err != nil {
			t.Fatalf("keygen run %d: %v\n%s", i+1, err, out)
		}
	}

	// The compose network's names become loopback, and each service's
	// listeners free ports of its own (containers do not share ports).
	listen := map[string]map[string]string{}
	// The free ports stay held until every service has its own.
	var held []net.Listener
	free := func() string {
		for {
			port, err := pgcluster.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			// Taken again: held by an earlier service of this test.
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				held = append(held, l)
				return l.Addr().String()
			}
		}
	}
	commands := map[string][]string{}
	whHostPort := net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port))
	anyAddr := regexp.MustCompile(`0\.0\.0\.0:\d+`)
	for _, name := range []string{"tickets", "proxy"} {
		s := c.Services[name]
		for dep := range s.DependsOn {
			if dep != "warehouse" && dep != "keygen" {
				t.Fatalf("service %s depends on %s, which this test does not run", name, dep)
			}
		}
		m := mount(name, s)
		listen[name] = map[string]string{}
		cfgPath := m["/etc/pgwarden/pgwarden.yaml"]
		raw, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatalf("service %s: no config mounted at /etc/pgwarden/pgwarden.yaml: %v", name, err)
		}
		text := strings.ReplaceAll(string(raw), "@warehouse:5432/", "@"+whHostPort+"/")
		for dst, host := range m {
			text = strings.ReplaceAll(text, " "+dst+"/", " "+host+"/")
			text = strings.ReplaceAll(text, "["+dst+"/", "["+host+"/")
		}
		text = anyAddr.ReplaceAllStringFunc(text, func(a string) string {
			if listen[name][a] == "" {
				listen[name][a] = free()
			}
			return listen[name][a]
		})
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		commands[name] = args(s, m)
	}
	for _, l := range held {
		l.Close()
	}
	exited := map[string]chan error{}
	for _, name := range []string{"tickets", "proxy"} {
		cmd := exec.CommandContext(ctx, pgw, commands[name]...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		exited[name] = done
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("service %s output:\n%s", name, firstN(out.String(), 4000))
			}
		})
	}
	cfg, err := config.Parse(mustRead(t, "pgwarden.yaml"), "/etc/pgwarden/pgwarden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ticketsURL := "http://" + listen["tickets"][cfg.Auth.Listen]
	proxyAddr := listen["proxy"][cfg.Proxy.Listen]
	waitOK(t, ctx, ticketsURL+"/readyz", exited["tickets"])
	waitOK(t, ctx, "http://"+listen["proxy"][cfg.Metrics.Listen]+"/readyz", exited["proxy"])

	// compose.yaml's header: mint a ticket with the demo API key, connect with it.
	body := `{"external_id":"alice","tenant":"acme","connection_roles":{"analytics":"querier"}}`
	if !strings.Contains(string(mustRead(t, "compose.yaml")), body) {
		t.Errorf("compose.yaml's header no longer mints with %s", body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ticketsURL+"/v1/tickets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer demo-api-key-change-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var minted struct{ Ticket string }
	json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || minted.Ticket == "" {
		t.Fatalf("POST /v1/tickets with the demo API key: %s", resp.Status)
	}
	host, port, _ := net.SplitHostPort(proxyAddr)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s dbname=analytics user=alice password=%s sslmode=disable", host, port, minted.Ticket))
	if err != nil {
		t.Fatalf("psql-like connection with the ticket: %v", err)
	}
	defer conn.Close(ctx)
	var tenants string
	if err := conn.QueryRow(ctx, "SELECT string_agg(DISTINCT tenant_id, ',') FROM orders").Scan(&tenants); err != nil || tenants != "acme" {
		t.Errorf("tenants seen through the compose proxy: %q, %v; want acme", tenants, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitOK polls url until it answers 200, as compose's depends_on would
// wait, and fails at once when the service exits.
func waitOK(t *testing.T, ctx context.Context, url string, exited <-chan error) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered 200", url)
		case err := <-exited:
			t.Fatalf("the service of %s exited: %v", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
