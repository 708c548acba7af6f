// Package pgtest gives tests a real PostgreSQL: a throwaway cluster that the
// test binary starts once in TestMain, or the server named by
// PGWARDEN_TEST_DATABASE_URL (a superuser URL). Each test gets its own fresh
// database so that tests can run in parallel and leave nothing behind.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgcluster"
)

// EnvURL names the environment variable that points tests at an existing server.
const EnvURL = "PGWARDEN_TEST_DATABASE_URL"

var (
	serverURL string // superuser URL of the server under test, set by Main
	cluster   *pgcluster.Cluster
	dbSeq     atomic.Int64
)

// Main starts the server (unless EnvURL is set), runs the tests and stops it.
// Call it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if u := os.Getenv(EnvURL); u != "" {
		serverURL = u
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL: %v\n", err)
		return 1
	}
	cluster = c
	serverURL = c.DSN("postgres")
	defer c.Stop()
	return m.Run()
}

// Cluster returns the throwaway cluster, or nil when tests run against EnvURL.
func Cluster() *pgcluster.Cluster { return cluster }

// ServerURL returns the superuser URL for the "postgres" database.
func ServerURL(t testing.TB) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("pgtest: no server; call pgtest.Main from TestMain")
	}
	return serverURL
}

// NewDatabase creates a fresh database, runs setupSQL in it (may be empty) and
// returns a superuser URL for it. The database is dropped when the test ends.
func NewDatabase(t testing.TB, setupSQL string) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL(t))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, ServerURL(t))
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u := WithDatabase(t, ServerURL(t), name)
	if strings.TrimSpace(setupSQL) != "" {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("pgtest: connect: %v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, setupSQL); err != nil {
			t.Fatalf("pgtest: setup SQL: %v", err)
		}
	}
	return u
}

// WithDatabase returns rawURL with its database replaced by db.
func WithDatabase(t testing.TB, rawURL, db string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("pgtest: bad URL: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

// WithUser returns rawURL with its user and password replaced.
func WithUser(t testing.TB, rawURL, user, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("pgtest: bad URL: %v", err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
