package embedctx

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/policy"
)

func TestCheck(t *testing.T) {
	b, err := New(Config{Networks: []string{"10.0.0.0/8", "192.168.1.7", "::ffff:172.16.0.0/108", "fd00::/8"},
		DirectAccessGroups: []string{"support"}}, "p")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		c    Conn
		want string
	}{
		{"listed network", Conn{Kind: policy.KindEmbed, Remote: a("10.2.3.4")}, ""},
		{"listed address", Conn{Kind: policy.KindEmbed, Remote: a("192.168.1.7")}, ""},
		{"next address", Conn{Kind: policy.KindEmbed, Remote: a("192.168.1.8")}, ReasonOutside},
		{"mapped v4 network", Conn{Kind: policy.KindEmbed, Remote: a("172.16.9.9")}, ""},
		{"mapped client", Conn{Kind: policy.KindEmbed, Remote: a("::ffff:10.0.0.1")}, ""},
		{"v6", Conn{Kind: policy.KindEmbed, Remote: a("fd12::1")}, ""},
		{"outside", Conn{Kind: policy.KindEmbed, Remote: a("8.8.8.8")}, ReasonOutside},
		{"no address", Conn{Kind: policy.KindEmbed}, ReasonOutside},
		{"no kind is embed", Conn{Remote: a("8.8.8.8")}, ReasonOutside},
		{"direct group", Conn{Kind: policy.KindEmbed, Groups: []string{"x", "support"}, Remote: a("8.8.8.8")}, ""},
		{"internal owner or administrator", Conn{Kind: policy.KindInternal, Operator: true, Remote: a("8.8.8.8")}, ""},
		{"acting for an operator", Conn{Kind: policy.KindEmbed, Operator: true, Remote: a("8.8.8.8")}, ""},
		{"internal creator", Conn{Kind: policy.KindInternal, Remote: a("8.8.8.8")}, ReasonOutside},
		{"pinned elsewhere", Conn{Kind: policy.KindEmbed, Remote: a("10.0.0.1"), PinnedAddr: a("10.0.0.2")}, ReasonPinnedAddress},
		{"pinned beats group", Conn{Kind: policy.KindEmbed, Groups: []string{"support"}, Remote: a("10.0.0.1"), PinnedAddr: a("10.0.0.2")}, ReasonPinnedAddress},
		{"pinned here", Conn{Kind: policy.KindEmbed, Remote: a("10.0.0.2"), PinnedAddr: a("::ffff:10.0.0.2")}, ""},
	} {
		if got := b.Check(tc.c); got != tc.want {
			t.Errorf("%s: Check = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Off: only pins bind.
	var off *Binding
	if got := off.Check(Conn{Remote: a("8.8.8.8")}); got != "" {
		t.Errorf("off: %q", got)
	}
	if got := off.Check(Conn{Remote: a("8.8.8.8"), PinnedAddr: a("10.0.0.1")}); got != ReasonPinnedAddress {
		t.Errorf("off, pinned: %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Networks: []string{"10.0.0.0/33"}}, "p.networks[0]"},
		{Config{Networks: []string{"backend.example.com"}}, "not a CIDR"},
		{Config{ClientCAFile: filepath.Join(dir, "missing.pem")}, "p.client_ca_file"},
		{Config{ClientCAFile: notPEM}, "no PEM certificate"},
		{Config{DirectAccessGroups: []string{"support"}}, "grants nothing"},
		{Config{Networks: []string{"10.0.0.0/8"}, DirectAccessGroups: []string{""}}, "direct_access_groups[0]"},
	} {
		if _, err := New(tc.c, "p"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.c, err, tc.want)
		}
	}
}
