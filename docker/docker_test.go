// Package docker_test keeps docker/compose.yaml, docker/pgwarden.yaml and the
// Dockerfile consistent with each other and with the config format. Docker
// cannot run here, so this is what stops them from rotting.
package docker_test

import (
	"net"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden/config"
)

type compose struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Ports   []string `yaml:"ports"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeMatchesConfig(t *testing.T) {
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
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
