// Package rewrite turns a client's SQL into SQL that can only read what the
// session's policy allows. It is a pure function of (statement text, identity,
// policy, catalog): no network, no logger.
package rewrite

import "slices"

// Kind classifies a statement for the proxy, which may need to act on it
// (track settings for pooling, handle transaction control, ...).
type Kind int

const (
	KindQuery       Kind = iota // SELECT, VALUES, TABLE, WITH ... (returns rows)
	KindExplain                 // EXPLAIN without ANALYZE
	KindShow                    // SHOW name
	KindSet                     // SET / RESET of an allow-listed setting
	KindTransaction             // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ...
	KindPrepare                 // PREPARE name AS ...
	KindExecute                 // EXECUTE name
	KindDeallocate              // DEALLOCATE name | ALL
	KindCursor                  // DECLARE, FETCH, MOVE, CLOSE
	KindDiscard                 // DISCARD ALL
	KindEmpty                   // an empty statement (only comments or semicolons)
	KindCopy                    // COPY (query) TO STDOUT (answered with CopyOutResponse, CopyData, CopyDone)
	KindWrite                   // INSERT, UPDATE, DELETE, or a query with one in WITH (write.go)
)

// Statement is one rewritten statement of a (possibly multi-statement) string.
type Statement struct {
	// SQL is the deparsed, rewritten statement: what runs on the warehouse.
	SQL  string
	Kind Kind
	// Relations lists the schema-qualified relations the statement reads
	// or writes.
	Relations []string
	// Writes lists the schema-qualified relations a KindWrite statement writes.
	Writes []string
	// SetName and SetValue describe a KindSet statement (SetValue is "" for RESET);
	// SetLocal is true for SET LOCAL.
	SetName  string
	SetValue string
	SetLocal bool
	// Savepoint names the savepoint of a KindTransaction statement that
	// SAVEPOINTs, RELEASEs or ROLLs BACK TO one, which SavepointOp says.
	Savepoint   string
	SavepointOp SavepointOp
}

// SavepointOp is what a transaction statement does to a savepoint.
type SavepointOp int

const (
	NoSavepoint SavepointOp = iota
	SavepointDefine
	SavepointRelease
	SavepointRollbackTo
)

// Result is what a rewrite returns. The proxy decides what to send; it always
// sends SQL, never the client's original text.
type Result struct {
	// SQL is all statements joined with "; ", ready to send as one simple Query.
	SQL        string
	Statements []Statement
	// Fingerprint identifies the original statement shape for logs (pg_query
	// fingerprint, hex); empty unless Options.Fingerprints is set.
	Fingerprint string
	// Cacheable reports whether the result was (or may be) cached.
	Cacheable bool
	// Prepared is the statement's prepared form (prepared.go), for a
	// single query that shares its rewrite with others of its shape.
	Prepared *Prepared
	// Learned lists the statements a viewer ran that the policy's content
	// does not list, allowed because the session is learning (content.go).
	Learned []Learned
}

// Writes lists the relations the statements write, for the audit log.
func (r *Result) Writes() []string {
	var out []string
	for _, st := range r.Statements {
		for _, w := range st.Writes {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}
