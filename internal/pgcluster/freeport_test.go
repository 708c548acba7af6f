package pgcluster

import (
	"net"
	"strconv"
	"testing"
)

// FreePort's ports lie below the ephemeral range, where no outgoing
// connection takes them, and can be bound.
func TestFreePort(t *testing.T) {
	lo := ephemeralLow()
	if lo <= 2*minFreePort {
		t.Skipf("ephemeral range starts at %d: FreePort falls back to port 0", lo)
	}
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < minFreePort || port >= lo {
			t.Fatalf("FreePort = %d, want in [%d, %d)", port, minFreePort, lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
}
