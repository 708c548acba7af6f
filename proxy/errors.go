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
// through, anything else is an internal error whose details go to the log
// under a correlation id and never onto the wire. fatal forces FATAL.
func (c *clientConn) errorResponse(err error, fatal bool) *pgproto3.ErrorResponse {
	var er *pgproto3.ErrorResponse
	var pe *pgerr.Error
	var we *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		er = &pgproto3.ErrorResponse{Severity: pe.Severity, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint, Position: pe.Position}
		if pe.Fatal() {
			// Log the cause a wrapped pgerr may carry (e.g. why a dial failed).
			if err != error(pe) {
				c.log.Info("fatal error", zap.String("sqlstate", pe.Code), zap.Error(err))
			}
		}
	case errors.As(err, &we):
		er = &pgproto3.ErrorResponse{Severity: we.Severity, Code: we.Code, Message: we.Message, Detail: we.Detail, Hint: we.Hint}
	default:
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
