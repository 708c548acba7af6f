package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A Parse declaring a reg* parameter is refused at Parse, and the connection
// stays usable; the same statement with a text parameter goes through.
func TestRegTypeParametersRefused(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	conn, err := pgconn.Connect(ctx, tp.url("tok-acme", "wh", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, oid := range []uint32{2205, 2206, 4089, 2210} {
		_, err := conn.Prepare(ctx, "", "SELECT $1", []uint32{oid})
		wantPgErr(t, err, "42501", "permission denied: parameter $1 of type")
	}
	if _, err := conn.Prepare(ctx, "", "SELECT $1", []uint32{25}); err != nil {
		t.Fatalf("text parameter: %v", err)
	}
}
