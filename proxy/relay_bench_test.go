package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/opstats"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy/pool"
)

// discardConn is a client socket that takes every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5432} }
func (discardConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6432} }
func (discardConn) Close() error                { return nil }
func (discardConn) SetDeadline(time.Time) error { return nil }
func (discardConn) SetReadDeadline(time.Time) error {
	return nil
}
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// answerReader gives one canned warehouse answer per Read, as a socket
// gives what the warehouse wrote at once.
type answerReader struct{ answer []byte }

func (r *answerReader) Read(p []byte) (int, error) { return copy(p, r.answer), nil }

// benchRelayConn is a session (embed, tenant acme, a logger at warn as in
// production, statistics on) whose relay reads from answer.
func benchRelayConn(b *testing.B, answer []byte) (*clientConn, *pool.Backend) {
	tp := startProxyTB(b, func(_ *Config, d *Deps) {
		d.Logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.WarnLevel))
		rec, err := opstats.New(opstats.Config{})
		if err != nil {
			b.Fatal(err)
		}
		d.Stats = rec
	})
	c := tp.srv.newClientConn(context.Background(), discardConn{})
	if c == nil {
		b.Fatal("server draining")
	}
	c.initIO()
	c.session = &auth.Session{ID: "s1", Kind: policy.KindEmbed, Tenant: "acme"}
	// The fields a session's logger carries after startup (startup.go).
	c.log = c.log.WithLazy(zap.String("user", "u"), zap.String("database", "wh")).
		WithLazy(zap.String("session", "s1"), zap.String("tenant", "acme")).
		WithLazy(zap.Uint32("pg_pid", 1))
	return c, pool.NewBackend(&serverConn{rd: frameReader{r: &answerReader{answer}}}, time.Time{}, 0)
}

func encodeAll(b *testing.B, msgs ...pgproto3.BackendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkRelayAnswer is the relay's work for one statement's answer, from
// the warehouse's bytes to the client's write, without sockets: a simple
// Query run as a prepared statement (simpleprep.go) and a prepared
// statement's Bind/Describe/Execute/Sync, one row each (pgbench -S).
func BenchmarkRelayAnswer(b *testing.B) {
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), TableOID: 16400, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
	answer := func(b *testing.B) []byte {
		return encodeAll(b, &pgproto3.BindComplete{}, rd, &pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
			&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	for _, bc := range []struct {
		name string
		auto bool // simpleprep's: BindComplete and NoData are not the client's
	}{{"simple", true}, {"prepared", false}} {
		b.Run(bc.name, func(b *testing.B) {
			c, be := benchRelayConn(b, answer(b))
			var qs [4]pending // reused: the allocations shown are the relay's
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				start := time.Now()
				for i, k := range [4]pendingKind{pBind, pDescribe, pExecute, pSync} {
					qs[i] = pending{kind: k, start: start, auto: bc.auto && k != pSync}
					c.q.push(&qs[i])
				}
				if err := c.relayFrom(be, true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
