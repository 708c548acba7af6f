package proxy

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pgwarden/pgwarden/proxy/embedctx"
)

// Defaults applied by Config.WithDefaults; zero fields take these values.
const (
	DefaultListen          = "127.0.0.1:6432"
	DefaultMaxMessageBytes = 16 << 20
	// DefaultMaxResultMessageBytes is PostgreSQL's own limit on one field
	// (1 GB): the warehouse already refuses to build anything larger, so
	// a row it sends is one the proxy relays.
	DefaultMaxResultMessageBytes = 1 << 30
	// maxProtocolMessage is the largest body the protocol's int32 length
	// can describe.
	maxProtocolMessage     = 1<<31 - 1 - 4
	DefaultIdleTimeout     = 0 // no idle timeout, as PostgreSQL's idle_session_timeout
	DefaultMaxClientConns  = 1000
	DefaultShutdownTimeout = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultAuthTimeout     = 60 * time.Second // PostgreSQL's authentication_timeout
)

// Config is the proxy's configuration. Zero values mean "use the default";
// call Validate (New does) before listening.
type Config struct {
	// Listen is the TCP address to listen on (default 127.0.0.1:6432).
	Listen string
	// TLSCertFile and TLSKeyFile enable TLS: SSLRequest is answered 'S'.
	// Without them SSLRequest is answered 'N'.
	TLSCertFile string
	TLSKeyFile  string
	// AllowInsecurePassword allows cleartext passwords (session tokens) over
	// non-TLS connections from non-loopback addresses. Off by default.
	AllowInsecurePassword bool
	// MaxMessageBytes caps one protocol message body from a client
	// (default 16 MiB): what the proxy must parse and rewrite.
	MaxMessageBytes int
	// MaxResultMessageBytes caps one message body from a warehouse, a row
	// of a result above all (default 1 GiB). Results are relayed, never
	// parsed whole, so they get their own, larger limit; a message above
	// it ends the client's connection (08P01).
	MaxResultMessageBytes int
	// IdleTimeout closes a connection that has no statement in flight for
	// this long with FATAL 57P05 (0 = never).
	IdleTimeout time.Duration
	// StatementTimeout is set as statement_timeout on every warehouse
	// connection (0 = the warehouse's default).
	StatementTimeout time.Duration
	// EventLoops is how many event loops run the sessions of socket clients
	// (over TLS or not) in transaction mode (evloop_linux.go): 0 for one per
	// processor less one, at least one; -1 for none, every session on
	// goroutines of its own. Linux only.
	EventLoops int
	// LoopIO is how the event loops do their I/O: "io_uring" (the default,
	// where the kernel allows it: ring_linux.go) or "epoll".
	LoopIO string
	// MaxClientConns caps concurrent client sessions (default 1000); above it
	// clients get FATAL 53300.
	MaxClientConns int
	// ShutdownTimeout bounds the drain when Serve's context is cancelled
	// (default 30s).
	ShutdownTimeout time.Duration
	// ConnectTimeout bounds connecting to a warehouse (default 10s).
	ConnectTimeout time.Duration
	// AuthTimeout bounds the startup and authentication phase (default 60s).
	AuthTimeout time.Duration
	// PeerID (1 to 255, 0 = alone) is this replica's id among the replicas
	// behind one address; Peers maps the others' ids to their client
	// listen addresses, and PeerSecret, shared by all, signs the cancel
	// requests they forward to each other (see peers.go).
	PeerID     int
	Peers      map[int]string
	PeerSecret []byte
	// EmbedContext binds embed sessions to the networks or client
	// certificates of their BI backends (off when empty; see embedctx).
	EmbedContext embedctx.Config
}

// WithDefaults returns c with every zero field set to its default. It is the
// one place defaults live.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxResultMessageBytes == 0 {
		c.MaxResultMessageBytes = DefaultMaxResultMessageBytes
	}
	if c.MaxClientConns == 0 {
		c.MaxClientConns = DefaultMaxClientConns
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	return c
}

// Validate reports every invalid field of c (after defaults are applied).
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("proxy.listen: %w", err))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("proxy.tls_cert_file and proxy.tls_key_file must be set together"))
	}
	if c.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("proxy.max_message_bytes: %d is below the minimum of 1024", c.MaxMessageBytes))
	}
	if c.MaxMessageBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("proxy.max_message_bytes: %d is above PostgreSQL's 1 GiB limit", c.MaxMessageBytes))
	}
	if c.MaxResultMessageBytes < 1024 || c.MaxResultMessageBytes > maxProtocolMessage {
		errs = append(errs, fmt.Errorf("proxy.max_result_message_bytes: %d is outside 1024 to %d", c.MaxResultMessageBytes, maxProtocolMessage))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"idle_timeout", c.IdleTimeout},
		{"statement_timeout", c.StatementTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
		{"connect_timeout", c.ConnectTimeout},
		{"auth_timeout", c.AuthTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("proxy.%s: must not be negative", d.name))
		}
	}
	if c.StatementTimeout > 0 && c.StatementTimeout < time.Millisecond {
		errs = append(errs, errors.New("proxy.statement_timeout: must be at least 1ms"))
	}
	if c.EmbedContext.ClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("proxy.embed_context.client_ca_file: client certificates need TLS (proxy.tls_cert_file and tls_key_file)"))
	}
	if c.MaxClientConns < 0 {
		errs = append(errs, errors.New("proxy.max_client_conns: must not be negative"))
	}
	errs = append(errs, c.validatePeers()...)
	return errors.Join(errs...)
}
