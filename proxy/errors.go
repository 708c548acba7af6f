package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/pgerr"
)

// errorResponse is the one place an error becomes an ErrorResponse: our
// *pgerr.Error maps field by field, a warehouse *pgconn.PgError passes
// through (wireError), anything else is an internal error whose details go
// to the log under a correlation id and never onto the wire. fatal forces
// FATAL.
func (c *clientConn) errorResponse(err error, fatal bool) *pgproto3.ErrorResponse {
	er, pe := wireError(err)
	switch {
	case pe != nil && pe.Fatal() && err != error(pe):
		// Log the cause a wrapped pgerr may carry (e.g. why a dial failed).
		c.log.Info("fatal error", zap.String("sqlstate", pe.Code), zap.Error(err))
	case er == nil:
		var b [8]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		c.log.Error("internal error", zap.String("correlation_id", id), zap.Error(err))
		er = &pgproto3.ErrorResponse{Code: pgerr.InternalError, Message: "internal error", Detail: "correlation id " + id}
	}
	if er.Severity == "" {
		er.Severity = pgerr.SeverityError
	}
	if fatal {
		er.Severity = pgerr.SeverityFatal
	}
	er.SeverityUnlocalized = er.Severity
	return er
}

// wireError is err as its client gets it when it is ours (pe, also
// returned) or the warehouse's; nil for anything else, an internal error.
func wireError(err error) (er *pgproto3.ErrorResponse, pe *pgerr.Error) {
	var we *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return &pgproto3.ErrorResponse{Severity: pe.Severity, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint, Position: pe.Position}, pe
	case errors.As(err, &we):
		return &pgproto3.ErrorResponse{Severity: we.Severity, Code: we.Code, Message: we.Message, Detail: we.Detail, Hint: we.Hint}, nil
	}
	return nil, nil
}
