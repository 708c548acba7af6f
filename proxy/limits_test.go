package proxy

import (
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/proxy/pool"
)

// Results have their own limit (max_result_message_bytes, default 1 GiB):
// a row larger than max_message_bytes, which guards what clients send the
// proxy to parse, reaches the client in either mode; a client message over
// max_message_bytes is still refused; a row over a configured result limit
// ends the session with 54000.
func TestResultMessageLimit(t *testing.T) {
	const clientLimit = 64 << 10
	const row = 1 << 20 // 16 times the client limit
	for _, mode := range []pool.Mode{pool.Session, pool.Transaction} {
		t.Run(string(mode), func(t *testing.T) {
			tp := startProxy(t, func(c *Config, d *Deps) {
				c.MaxMessageBytes = clientLimit
				d.Warehouses["wh"].Pool.Mode = mode
			})
			ctx := ctxT(t)
			conn := tp.connect(t, ctx, "tok-acme")
			res, err := conn.Exec(ctx, "SELECT repeat('x', 1048576)").ReadAll()
			if err != nil {
				t.Fatalf("a %d-byte row with the default result limit: %v", row, err)
			}
			if got := len(res[0].Rows[0][0]); got != row {
				t.Fatalf("row of %d bytes, want %d", got, row)
			}
			// The client's own messages stay capped.
			big := "SELECT '" + strings.Repeat("y", clientLimit) + "'"
			_, err = conn.Exec(ctx, big).ReadAll()
			wantPgErr(t, err, "08P01", "exceeds the limit of 65536 bytes")
		})
	}
	t.Run("configured result limit", func(t *testing.T) {
		tp := startProxy(t, func(c *Config, d *Deps) {
			c.MaxMessageBytes = clientLimit
			c.MaxResultMessageBytes = 256 << 10
		})
		ctx := ctxT(t)
		conn := tp.connect(t, ctx, "tok-acme")
		if _, err := conn.Exec(ctx, "SELECT repeat('x', 200000)").ReadAll(); err != nil {
			t.Fatalf("a row under the result limit: %v", err)
		}
		_, err := conn.Exec(ctx, "SELECT repeat('x', 1048576)").ReadAll()
		wantPgErr(t, err, "54000", "result message of")
	})
}
