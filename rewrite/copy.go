package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

// COPY ... TO STDOUT is the export path of psql's \copy, psycopg's copy and
// CSV downloads. Only that direction and destination are allowed, and only
// of a query: COPY relation [(columns)] TO STDOUT becomes
// COPY (SELECT columns FROM relation) TO STDOUT, whose query then goes
// through the same walk as any SELECT, so that the relation is fenced, its
// masked columns masked and a denied column refused when it is named (and
// left out when it is not, as SELECT * leaves it out).

// copyOptions are the options COPY ... TO accepts, by the kinds of value
// each may have. ENCODING is left out: the proxy speaks the client's
// encoding for it, and a COPY in another one would bypass that.
var copyOptions = map[string]copyValue{
	"format": copyWord, "delimiter": copyWord, "null": copyWord, "header": copyBool,
	"quote": copyWord, "escape": copyWord, "force_quote": copyColumns,
}

type copyValue uint8

const (
	copyWord    copyValue = iota // a string
	copyBool                     // absent, a boolean, 0/1 or a word (on, off, true, ...)
	copyColumns                  // * or a list of column names
)

// copyStmt checks a COPY and turns a relation's into a query's.
func (p *pass) copyStmt(c *pg_query.CopyStmt) {
	switch {
	case c.IsFrom:
		p.fail(pgerr.Denied("permission denied: COPY FROM is not allowed").
			WithHint("pgwarden is read-only: COPY ... TO STDOUT exports"))
		return
	case c.IsProgram:
		p.fail(pgerr.Denied("permission denied: COPY TO PROGRAM is not allowed").
			WithHint("use COPY ... TO STDOUT and let the client write the data"))
		return
	case c.Filename != "":
		p.fail(pgerr.Denied("permission denied: COPY to a server file is not allowed").
			WithHint("use COPY ... TO STDOUT, as psql's \\copy does"))
		return
	case c.WhereClause != nil:
		p.fail(pgerr.Unsupported("WHERE clause not allowed with COPY TO").
			WithHint("try the COPY (SELECT ... WHERE ...) TO variant"))
		return
	}
	for _, o := range c.Options {
		p.copyOption(o)
	}
	if p.err != nil {
		return
	}
	if c.Relation != nil {
		c.Query = copySelect(c.Relation, c.Attlist)
		c.Relation, c.Attlist = nil, nil
	}
	p.query(c.Query, "COPY")
}

// copyOption accepts an allow-listed option whose value is a constant of a
// kind it takes.
func (p *pass) copyOption(o *pg_query.Node) {
	d := o.GetDefElem()
	if d == nil {
		p.unsupported("COPY option " + nodeKind(o))
		return
	}
	kind, ok := copyOptions[d.Defname]
	if !ok {
		p.fail(pgerr.Unsupported("COPY option %s is not supported", strings.ToUpper(d.Defname)))
		return
	}
	arg := d.Arg
	good := false
	switch kind {
	case copyWord:
		good = arg.GetString_() != nil
	case copyBool:
		switch arg.GetNode().(type) {
		case nil, *pg_query.Node_String_, *pg_query.Node_Boolean, *pg_query.Node_Integer:
			good = true
		}
	case copyColumns:
		if arg.GetAStar() != nil {
			good = true
			break
		}
		if l := arg.GetList(); l != nil {
			good = true
			for _, it := range l.Items {
				good = good && it.GetString_() != nil
			}
		}
	}
	if !good {
		p.fail(pgerr.New(pgerr.SyntaxError, "invalid value for COPY option %s", strings.ToUpper(d.Defname)))
		return
	}
	// pg_query deparses only the formats PostgreSQL knows (and drops any
	// other, leaving FORMAT without a value); PostgreSQL's own refusal.
	if f := arg.GetString_().GetSval(); d.Defname == "format" && f != "text" && f != "csv" && f != "binary" {
		p.fail(pgerr.New(pgerr.InvalidParameterValue, "COPY format %q not recognized", f))
	}
}
