// Package pgerr is pgwarden's one error type: an error that carries a PostgreSQL
// SQLSTATE, a message a person can act on, and optional detail, hint and position.
// Every package that refuses something returns a *pgerr.Error; the proxy is the
// one place that turns errors into ErrorResponse messages.
package pgerr

import (
	"errors"
	"fmt"
)

// SQLSTATE codes used by pgwarden (PostgreSQL appendix A).
const (
	SuccessfulCompletion       = "00000"
	ConnectionFailure          = "08006"
	ProtocolViolation          = "08P01"
	FeatureNotSupported        = "0A000"
	InvalidParameterValue      = "22023"
	InvalidAuthorization       = "28000"
	InvalidPassword            = "28P01"
	InvalidCatalogName         = "3D000"
	InvalidTransactionState    = "25000"
	InFailedTransaction        = "25P02"
	SyntaxError                = "42601"
	InsufficientPrivilege      = "42501"
	UndefinedTable             = "42P01"
	UndefinedColumn            = "42703"
	UndefinedFunction          = "42883"
	UndefinedObject            = "42704"
	AmbiguousColumn            = "42702"
	DuplicatePreparedStatement = "42P05"
	InvalidSQLStatementName    = "26000"
	InvalidCursorName          = "34000"
	CantChangeRuntimeParam     = "55P02"
	OutOfMemory                = "53200"
	TooManyConnections         = "53300"
	ProgramLimitExceeded       = "54000"
	StatementTooComplex        = "54001"
	QueryCanceled              = "57014"
	AdminShutdown              = "57P01"
	CannotConnectNow           = "57P03"
	IdleSessionTimeout         = "57P05"
	InternalError              = "XX000"
)

// Severities as they appear in ErrorResponse.
const (
	SeverityError = "ERROR"
	SeverityFatal = "FATAL"
)

// Error is an error with a SQLSTATE. The zero Severity means ERROR.
type Error struct {
	Severity string
	Code     string
	Message  string
	Detail   string
	Hint     string
	// Position is the 1-based character offset into the statement text that the
	// error refers to, or 0.
	Position int32
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("%s (SQLSTATE %s; hint: %s)", e.Message, e.Code, e.Hint)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

// SQLState returns the error's SQLSTATE code.
func (e *Error) SQLState() string { return e.Code }

// Fatal reports whether the error ends the session.
func (e *Error) Fatal() bool { return e.Severity == SeverityFatal }

// WithHint returns a copy of e with the hint set.
func (e *Error) WithHint(format string, args ...any) *Error {
	c := *e
	c.Hint = fmt.Sprintf(format, args...)
	return &c
}

// WithDetail returns a copy of e with the detail set.
func (e *Error) WithDetail(format string, args ...any) *Error {
	c := *e
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// AsFatal returns a copy of e with severity FATAL.
func (e *Error) AsFatal() *Error {
	c := *e
	c.Severity = SeverityFatal
	return &c
}

// New returns an ERROR with the given code and message.
func New(code, format string, args ...any) *Error {
	return &Error{Severity: SeverityError, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fatalf returns a FATAL error with the given code and message.
func Fatalf(code, format string, args ...any) *Error {
	return &Error{Severity: SeverityFatal, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Denied is 42501 for a refused relation, column, function or statement.
func Denied(format string, args ...any) *Error {
	return New(InsufficientPrivilege, format, args...)
}

// Unsupported is 0A000 for a construct pgwarden does not handle.
func Unsupported(format string, args ...any) *Error {
	return New(FeatureNotSupported, format, args...)
}

// Syntax is 42601 at a 1-based position.
func Syntax(pos int32, format string, args ...any) *Error {
	e := New(SyntaxError, format, args...)
	e.Position = pos
	return e
}

// StackDepth is 54001 "stack depth limit exceeded", PostgreSQL's answer to
// a statement that nests too deeply, with a detail saying whose limit it is.
func StackDepth(detail string, args ...any) *Error {
	e := New(StatementTooComplex, "stack depth limit exceeded")
	e.Detail = fmt.Sprintf(detail, args...)
	e.Hint = "nest fewer subqueries, or split long chains of operators, set operations or joins"
	return e
}

// BadCredentials is FATAL 28P01.
func BadCredentials(format string, args ...any) *Error {
	return Fatalf(InvalidPassword, format, args...)
}

// Shutdown is FATAL 57P01.
func Shutdown() *Error {
	return Fatalf(AdminShutdown, "terminating connection due to administrator command")
}

// SQLStateOf returns the SQLSTATE of any error that has one (pgwarden's own,
// or a warehouse *pgconn.PgError), and "" otherwise.
func SQLStateOf(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}
