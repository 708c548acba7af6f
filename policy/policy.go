// Package policy is pgwarden's policy model: which relations a session may
// read, which rows (tenant column and filters), and which columns (deny and
// masks). It is data plus loading and validation; the rewriter applies it.
//
// The YAML format (see testdata/policy/README.md for the full reference):
//
//	search_path: [public]              # default [public]; clients can never change it
//	tenants: [acme, globex]            # optional; when non-empty, other tenants are refused
//	test_tenants: [acme]               # tenants Creators and Designers may act as (sign-on)
//	groups: [pii, analysts]            # optional; when non-empty, other groups are refused
//	functions: { allow: [my_udf] }     # extends the built-in function allow-list
//	relations:
//	  public.orders:
//	    tenant_column: tenant_id       # required unless shared: true
//	    published: true                # visible to viewer and restricted_querier roles
//	    filters:
//	      - sql: "region = ANY({{attr.regions}})"
//	        when_absent: no_rows       # or ignore; default no_rows
//	  public.customers:
//	    tenant_column: tenant_id
//	    columns:
//	      email: { mask: email, unless_groups: [pii] }
//	      phone: { deny: true, unless_groups: [pii] }
//	  public.products: { shared: true, published: true }
//	internal:                          # optional relation set for internal (SSO) sessions
//	  relations: { ... }
//
// A relation that is not listed does not exist as far as a session can tell.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"go.yaml.in/yaml/v3"
)

// MaskKind names a column mask.
type MaskKind string

// Masks. Each replaces the column's value inside the relation's subquery, so
// every clause of the client's query sees only the masked value.
const (
	MaskNull    MaskKind = "null"    // NULL of the column's type
	MaskRedact  MaskKind = "redact"  // a constant of the column's type family
	MaskHash    MaskKind = "hash"    // stable hex digest (md5 of the text form)
	MaskEmail   MaskKind = "email"   // '***@' || domain
	MaskLast4   MaskKind = "last4"   // '***' || last four characters
	MaskPartial MaskKind = "partial" // keep_first and keep_last characters, '***' between
	MaskSQL     MaskKind = "sql"     // a policy-supplied expression over the relation's columns
)

// WhenAbsent says what a filter does when a placeholder it uses has no value
// in the session (an attribute that is not set, an empty external_id).
type WhenAbsent string

const (
	AbsentNoRows WhenAbsent = "no_rows" // the filter becomes false
	AbsentIgnore WhenAbsent = "ignore"  // the filter is dropped
)

// PlaceholderKind is what a {{...}} placeholder in a filter stands for.
type PlaceholderKind int

const (
	PlaceTenant     PlaceholderKind = iota // {{tenant}}: text
	PlaceExternalID                        // {{external_id}}: text
	PlaceEmail                             // {{email}}: text
	PlaceAttr                              // {{attr.NAME}}: text[]
	PlaceGroups                            // {{groups}}: text[]
)

// Placeholder is one {{...}} of a filter; Param is the $n it was tokenized to.
type Placeholder struct {
	Kind  PlaceholderKind
	Attr  string // for PlaceAttr
	Param int32
}

// Filter is a row filter: a boolean expression over the relation's columns,
// parsed once at load. Expr contains ParamRef nodes $n for the placeholders;
// the rewriter substitutes typed constants for them, never text.
type Filter struct {
	SQL          string
	WhenAbsent   WhenAbsent
	Expr         *pg_query.Node
	Placeholders []Placeholder
	// Columns are the relation columns the expression references.
	Columns []string
}

// Mask is a column mask.
type Mask struct {
	Kind      MaskKind
	KeepFirst int
	KeepLast  int
	// Expr is the parsed expression of a sql mask.
	Expr    *pg_query.Node
	SQL     string
	Columns []string
}

// ColumnRule denies or masks one column unless the session is in one of
// UnlessGroups.
type ColumnRule struct {
	Deny         bool
	Mask         *Mask
	UnlessGroups []string
}

// Relation is one exposed relation.
type Relation struct {
	Schema string
	Name   string
	// TenantColumn keys rows by tenant; empty for shared relations.
	TenantColumn string
	Shared       bool
	Published    bool
	// Groups, when set, grant the relation only to sessions in one of
	// them: to any other session it does not exist.
	Groups  []string
	Filters []*Filter
	Columns map[string]*ColumnRule
	// Tenancy is how tenants are kept apart (tenancy.go); empty for shared
	// relations. Rewrite is false for a passthrough relation that the
	// warehouse alone guards (then it is Shared, with no filters or column
	// rules; rowsecurity.go).
	Tenancy Tenancy
	Rewrite bool
	// Writes, when set, opens the relation for writing (writes.go).
	Writes *Writes
}

// ReachedBy reports whether the relation is granted to id's groups: always
// when it names none.
func (r *Relation) ReachedBy(id *Identity) bool {
	return len(r.Groups) == 0 || id.InGroup(r.Groups...)
}

// QualifiedName returns schema.name.
func (r *Relation) QualifiedName() string { return r.Schema + "." + r.Name }

// Policy is a loaded, validated policy. It is immutable and safe for
// concurrent use.
type Policy struct {
	File       string
	SearchPath []string
	Tenants    []string
	// TestTenants are the tenants internal Creators and Designers may
	// open sessions of, to build and check dashboards.
	TestTenants []string
	Groups      []string
	// Functions extends the built-in function allow-list.
	Functions []string
	// Relations are what embed sessions (and internal ones, when Internal is nil) see.
	Relations map[string]*Relation
	// Internal, when non-nil, is the relation set for internal sessions.
	Internal map[string]*Relation
	// TenantSchemas (and InternalTenantSchemas for the internal set) map
	// tenants to their schemas, for relations with tenancy: schema.
	TenantSchemas         *TenantSchemas
	InternalTenantSchemas *TenantSchemas
	// RowSecurity, when non-nil, is what pgwarden sets on warehouse
	// connections for the warehouse's own row-level security to read.
	RowSecurity *RowSecurity
	// Content, when non-nil, is the allow-list of statements for viewer
	// sessions (content.go).
	Content *Content

	version   string
	tenantSet map[string]bool
	groupSet  map[string]bool
	funcSet   map[string]bool
}

// Version is a content hash of the policy file (the first 16 bytes of its
// SHA-256, in hex): rewrite caches key by it and audit records carry it as
// policy_version, so a reload that changes the file changes it.
func (p *Policy) Version() string { return p.version }

// KnowsTenant reports whether tickets for tenant may be minted: true for every
// non-empty tenant when the policy lists none.
func (p *Policy) KnowsTenant(tenant string) bool {
	if tenant == "" {
		return false
	}
	return len(p.tenantSet) == 0 || p.tenantSet[tenant]
}

// KnowsGroup reports whether group is known: true for everything when the
// policy lists no groups.
func (p *Policy) KnowsGroup(group string) bool {
	return len(p.groupSet) == 0 || p.groupSet[group]
}

// RelationsFor returns the relation set for sessions of kind k.
func (p *Policy) RelationsFor(k Kind) map[string]*Relation {
	if k == KindInternal && p.Internal != nil {
		return p.Internal
	}
	return p.Relations
}

// FunctionAllowed reports whether a function may be called. name is the
// function name and schema its qualifier ("" when unqualified); pg_catalog
// functions resolve like unqualified ones.
func (p *Policy) FunctionAllowed(schema, name string) bool {
	if schema == "" || schema == "pg_catalog" {
		if builtinFunctions[name] || p.funcSet[name] {
			return true
		}
		return schema == "pg_catalog" && p.funcSet["pg_catalog."+name]
	}
	return p.funcSet[schema+"."+name]
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, filepath.Base(path))
}

// The YAML shapes. KnownFields(true) turns typos into errors.
type fileDoc struct {
	SearchPath  []string                `yaml:"search_path"`
	Tenants     []string                `yaml:"tenants"`
	TestTenants []string                `yaml:"test_tenants"`
	Groups      []string                `yaml:"groups"`
	Functions   *fileFunctions          `yaml:"functions"`
	Relations   map[string]fileRelation `yaml:"relations"`
	Internal    *fileInternal           `yaml:"internal"`
	// TenantSchemas is tenancy.go's block.
	TenantSchemas *fileTenantSchemas `yaml:"tenant_schemas"`
	// RowSecurity is parsed in rowsecurity.go.
	RowSecurity *fileRowSecurity `yaml:"row_security"`
	Content     *fileContent     `yaml:"content"`
}

type fileFunctions struct {
	Allow []string `yaml:"allow"`
}

type fileInternal struct {
	Relations     map[string]fileRelation `yaml:"relations"`
	TenantSchemas *fileTenantSchemas      `yaml:"tenant_schemas"`
}

type fileRelation struct {
	TenantColumn string                `yaml:"tenant_column"`
	Shared       bool                  `yaml:"shared"`
	Tenancy      string                `yaml:"tenancy"`
	Published    bool                  `yaml:"published"`
	Groups       []string              `yaml:"groups"`
	Filters      []fileFilter          `yaml:"filters"`
	Columns      map[string]fileColumn `yaml:"columns"`
	Rewrite      *bool                 `yaml:"rewrite"`
	Writes       *fileWrites           `yaml:"writes"`
}

type fileFilter struct {
	SQL        string `yaml:"sql"`
	WhenAbsent string `yaml:"when_absent"`
}

type fileColumn struct {
	Deny         bool      `yaml:"deny"`
	Mask         yaml.Node `yaml:"mask"` // a node, so that `mask: null` is the null mask, not YAML null
	SQL          string    `yaml:"sql"`
	KeepFirst    *int      `yaml:"keep_first"`
	KeepLast     *int      `yaml:"keep_last"`
	UnlessGroups []string  `yaml:"unless_groups"`
}

// Parse parses and validates a policy; filename names it in errors.
func Parse(data []byte, filename string) (*Policy, error) {
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(filename, err)
	}
	sum := sha256.Sum256(data)
	p := &Policy{
		File:       filename,
		SearchPath: doc.SearchPath,
		Tenants:    doc.Tenants,
		Groups:     doc.Groups,
		version:    hex.EncodeToString(sum[:16]),
		tenantSet:  map[string]bool{},
		groupSet:   map[string]bool{},
		funcSet:    map[string]bool{},
	}
	if len(p.SearchPath) == 0 {
		p.SearchPath = []string{"public"}
	}
	for i, s := range p.SearchPath {
		if s == "" {
			return nil, fmt.Errorf("%s: search_path[%d]: empty schema name", filename, i)
		}
	}
	for i, t := range p.Tenants {
		if t == "" {
			return nil, fmt.Errorf("%s: tenants[%d]: empty tenant", filename, i)
		}
		p.tenantSet[t] = true
	}
	for i, t := range doc.TestTenants {
		if !p.KnowsTenant(t) {
			return nil, fmt.Errorf("%s: test_tenants[%d]: %q is not one of tenants", filename, i, t)
		}
		p.TestTenants = append(p.TestTenants, t)
	}
	for i, g := range p.Groups {
		if g == "" {
			return nil, fmt.Errorf("%s: groups[%d]: empty group", filename, i)
		}
		p.groupSet[g] = true
	}
	if doc.Functions != nil {
		for i, f := range doc.Functions.Allow {
			if f == "" || strings.Count(f, ".") > 1 {
				return nil, fmt.Errorf("%s: functions.allow[%d]: bad function name %q (want name or schema.name)", filename, i, f)
			}
			if deniedFunctions[strings.TrimPrefix(f, "pg_catalog.")] {
				return nil, fmt.Errorf("%s: functions.allow[%d]: function %q can never be allowed", filename, i, f)
			}
			p.funcSet[f] = true
			p.Functions = append(p.Functions, f)
		}
	}
	if len(doc.Relations) == 0 {
		return nil, fmt.Errorf("%s: relations: no relations listed", filename)
	}
	var err error
	if doc.RowSecurity != nil {
		if p.RowSecurity, err = parseRowSecurity(filename, doc.RowSecurity); err != nil {
			return nil, err
		}
	}
	if p.TenantSchemas, err = parseTenantSchemas(doc.TenantSchemas, filename+": tenant_schemas"); err != nil {
		return nil, err
	}
	if p.Relations, err = p.parseRelations(doc.Relations, "relations"); err != nil {
		return nil, err
	}
	reserveSchemas(p.TenantSchemas, p.Relations)
	if doc.Internal != nil {
		if p.InternalTenantSchemas, err = parseTenantSchemas(doc.Internal.TenantSchemas, filename+": internal.tenant_schemas"); err != nil {
			return nil, err
		}
		if p.Internal, err = p.parseRelations(doc.Internal.Relations, "internal.relations"); err != nil {
			return nil, err
		}
		reserveSchemas(p.TenantSchemasFor(KindInternal), p.Internal)
	}
	if doc.Content != nil {
		if p.Content, err = p.parseContent(doc.Content); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Policy) parseRelations(in map[string]fileRelation, field string) (map[string]*Relation, error) {
	out := make(map[string]*Relation, len(in))
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		fr := in[key]
		where := fmt.Sprintf("%s: %s.%q", p.File, field, key)
		schema, name, ok := strings.Cut(key, ".")
		if !ok {
			schema, name = p.SearchPath[0], key
		}
		if schema == "" || name == "" || strings.Contains(name, ".") {
			return nil, fmt.Errorf("%s: bad relation name (want schema.name)", where)
		}
		r := &Relation{Schema: schema, Name: name, TenantColumn: fr.TenantColumn, Shared: fr.Shared,
			Published: fr.Published, Groups: fr.Groups, Columns: map[string]*ColumnRule{}, Rewrite: true}
		for i, g := range fr.Groups {
			if g == "" || !p.KnowsGroup(g) {
				return nil, fmt.Errorf("%s.groups[%d]: unknown group %q", where, i, g)
			}
		}
		if err := p.parseTenancy(r, fr, p.tenantSchemasOf(field), where); err != nil {
			return nil, err
		}
		switch {
		case r.Shared && r.TenantColumn != "":
			return nil, fmt.Errorf("%s: shared relations have no tenant_column", where)
		case !r.Shared && r.TenantColumn == "" && r.Tenancy == TenancyColumn:
			return nil, fmt.Errorf("%s.tenant_column: missing (or set shared: true)", where)
		}
		if _, dup := out[r.QualifiedName()]; dup {
			return nil, fmt.Errorf("%s: relation listed twice", where)
		}
		for i, ff := range fr.Filters {
			f, err := p.parseFilter(ff)
			if err != nil {
				return nil, fmt.Errorf("%s.filters[%d].%w", where, i, err)
			}
			r.Filters = append(r.Filters, f)
		}
		for col, fc := range fr.Columns {
			rule, err := p.parseColumn(fc)
			if err != nil {
				return nil, fmt.Errorf("%s.columns.%s.%w", where, col, err)
			}
			if col == r.TenantColumn && rule.Deny {
				return nil, fmt.Errorf("%s.columns.%s.deny: the tenant column cannot be denied", where, col)
			}
			r.Columns[col] = rule
		}
		var err error
		if r.Writes, err = p.parseWrites(fr.Writes, r, where); err != nil {
			return nil, err
		}
		out[r.QualifiedName()] = r
	}
	return out, nil
}

// fieldError prefixes a message with the field it is about; parseColumn's
// callers put "<relation>.columns.<col>." in front.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func (p *Policy) parseColumn(fcol fileColumn) (*ColumnRule, error) {
	fc := struct {
		fileColumn
		Mask string
	}{fileColumn: fcol}
	switch {
	case fcol.Mask.Kind == 0:
	case fcol.Mask.Kind != yaml.ScalarNode:
		return nil, fieldError("mask", "want a mask name")
	case fcol.Mask.Tag == "!!null" && fcol.Mask.Value != "":
		fc.Mask = string(MaskNull)
	default:
		fc.Mask = fcol.Mask.Value
	}
	rule := &ColumnRule{Deny: fc.Deny, UnlessGroups: fc.UnlessGroups}
	for i, g := range fc.UnlessGroups {
		if !p.KnowsGroup(g) {
			return nil, fieldError(fmt.Sprintf("unless_groups[%d]", i), "unknown group %q", g)
		}
	}
	if fc.Deny && fc.Mask != "" {
		return nil, fieldError("mask", "a denied column cannot also be masked")
	}
	if !fc.Deny && fc.Mask == "" {
		return nil, fieldError("mask", "missing (want deny: true or a mask)")
	}
	if fc.Mask != string(MaskPartial) && (fc.KeepFirst != nil || fc.KeepLast != nil) {
		return nil, fieldError("keep_first", "only the partial mask keeps characters")
	}
	if fc.Mask != string(MaskSQL) && fc.SQL != "" {
		return nil, fieldError("sql", "only the sql mask takes an expression")
	}
	if fc.Deny {
		return rule, nil
	}
	m := &Mask{Kind: MaskKind(fc.Mask)}
	switch m.Kind {
	case MaskNull, MaskRedact, MaskHash, MaskEmail, MaskLast4:
	case MaskPartial:
		if fc.KeepFirst != nil {
			m.KeepFirst = *fc.KeepFirst
		}
		if fc.KeepLast != nil {
			m.KeepLast = *fc.KeepLast
		}
		if m.KeepFirst < 0 || m.KeepLast < 0 || m.KeepFirst+m.KeepLast == 0 {
			return nil, fieldError("keep_first", "partial needs keep_first and/or keep_last > 0")
		}
	case MaskSQL:
		if fc.SQL == "" {
			return nil, fieldError("sql", "missing expression for the sql mask")
		}
		expr, places, cols, err := p.parseExpr(fc.SQL, false)
		if err != nil {
			return nil, fieldError("sql", "%v", err)
		}
		_ = places
		m.Expr, m.SQL, m.Columns = expr, fc.SQL, cols
	default:
		return nil, fieldError("mask", "unknown mask %q (want null, redact, hash, email, last4, partial or sql)", fc.Mask)
	}
	rule.Mask = m
	return rule, nil
}

func (p *Policy) parseFilter(ff fileFilter) (*Filter, error) {
	f := &Filter{SQL: ff.SQL, WhenAbsent: WhenAbsent(ff.WhenAbsent)}
	switch f.WhenAbsent {
	case "":
		f.WhenAbsent = AbsentNoRows
	case AbsentNoRows, AbsentIgnore:
	default:
		return nil, fmt.Errorf("when_absent: unknown value %q (want no_rows or ignore)", ff.WhenAbsent)
	}
	if strings.TrimSpace(ff.SQL) == "" {
		return nil, fmt.Errorf("sql: missing filter expression")
	}
	expr, places, cols, err := p.parseExpr(ff.SQL, true)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	f.Expr, f.Placeholders, f.Columns = expr, places, cols
	return f, nil
}

// tokenize replaces each {{name}} of a policy expression with $n. This runs
// on the policy author's text, never on client SQL.
func tokenize(src string, allowPlaceholders bool) (string, []Placeholder, error) {
	var b strings.Builder
	var places []Placeholder
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			if strings.Contains(src, "}}") {
				return "", nil, fmt.Errorf("unmatched }}")
			}
			b.WriteString(src)
			return b.String(), places, nil
		}
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			return "", nil, fmt.Errorf("unterminated placeholder")
		}
		name := strings.TrimSpace(src[i+2 : i+j])
		if !allowPlaceholders {
			return "", nil, fmt.Errorf("placeholder {{%s}} not allowed here", name)
		}
		ph := Placeholder{Param: int32(len(places) + 1)}
		switch {
		case name == "tenant":
			ph.Kind = PlaceTenant
		case name == "external_id":
			ph.Kind = PlaceExternalID
		case name == "email":
			ph.Kind = PlaceEmail
		case name == "groups":
			ph.Kind = PlaceGroups
		case strings.HasPrefix(name, "attr.") && len(name) > len("attr."):
			ph.Kind, ph.Attr = PlaceAttr, strings.TrimPrefix(name, "attr.")
		default:
			return "", nil, fmt.Errorf("unknown placeholder {{%s}} (want tenant, external_id, email, groups or attr.NAME)", name)
		}
		places = append(places, ph)
		b.WriteString(src[:i])
		fmt.Fprintf(&b, " $%d ", ph.Param)
		src = src[i+j+2:]
	}
}

// parseExpr parses a policy expression once: SELECT <expr>, keeping the
// expression node, after checking it uses only plain column references,
// allow-listed functions and no subqueries.
func (p *Policy) parseExpr(src string, allowPlaceholders bool) (*pg_query.Node, []Placeholder, []string, error) {
	text, places, err := tokenize(src, allowPlaceholders)
	if err != nil {
		return nil, nil, nil, err
	}
	tree, err := pg_query.Parse("SELECT " + text)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse error: %v", err)
	}
	if len(tree.Stmts) != 1 {
		return nil, nil, nil, fmt.Errorf("want exactly one expression")
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || len(sel.FromClause) != 0 || sel.WhereClause != nil ||
		sel.GroupClause != nil || sel.HavingClause != nil || sel.SortClause != nil || sel.LimitCount != nil ||
		sel.LimitOffset != nil || sel.WithClause != nil || sel.Op != pg_query.SetOperation_SETOP_NONE ||
		sel.DistinctClause != nil || sel.WindowClause != nil {
		return nil, nil, nil, fmt.Errorf("want exactly one expression")
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || rt.Val == nil {
		return nil, nil, nil, fmt.Errorf("want exactly one expression")
	}
	v := exprValidator{p: p}
	v.walk(rt.Val)
	if v.err != nil {
		return nil, nil, nil, v.err
	}
	for _, n := range v.params {
		if n < 1 || int(n) > len(places) {
			return nil, nil, nil, fmt.Errorf("parameter $%d not allowed (use {{...}} placeholders)", n)
		}
	}
	slices.Sort(v.cols)
	return rt.Val, places, slices.Compact(v.cols), nil
}

// exprValidator checks a policy expression. Unknown node kinds are refused.
type exprValidator struct {
	p      *Policy
	err    error
	cols   []string
	params []int32
}

func (v *exprValidator) fail(format string, args ...any) {
	if v.err == nil {
		v.err = fmt.Errorf(format, args...)
	}
}

func (v *exprValidator) walkList(ns []*pg_query.Node) {
	for _, n := range ns {
		v.walk(n)
	}
}

func (v *exprValidator) walk(n *pg_query.Node) {
	if n == nil || v.err != nil {
		return
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_AConst:
	case *pg_query.Node_ParamRef:
		v.params = append(v.params, x.ParamRef.Number)
	case *pg_query.Node_ColumnRef:
		f := x.ColumnRef.Fields
		if len(f) != 1 || f[0].GetString_() == nil {
			v.fail("only plain column names of the relation may be referenced")
			return
		}
		v.cols = append(v.cols, f[0].GetString_().Sval)
	case *pg_query.Node_AExpr:
		v.walk(x.AExpr.Lexpr)
		v.walk(x.AExpr.Rexpr)
	case *pg_query.Node_BoolExpr:
		v.walkList(x.BoolExpr.Args)
	case *pg_query.Node_List:
		v.walkList(x.List.Items)
	case *pg_query.Node_TypeCast:
		v.walk(x.TypeCast.Arg)
	case *pg_query.Node_NullTest:
		v.walk(x.NullTest.Arg)
	case *pg_query.Node_BooleanTest:
		v.walk(x.BooleanTest.Arg)
	case *pg_query.Node_CoalesceExpr:
		v.walkList(x.CoalesceExpr.Args)
	case *pg_query.Node_MinMaxExpr:
		v.walkList(x.MinMaxExpr.Args)
	case *pg_query.Node_AArrayExpr:
		v.walkList(x.AArrayExpr.Elements)
	case *pg_query.Node_CaseExpr:
		v.walk(x.CaseExpr.Arg)
		v.walkList(x.CaseExpr.Args)
		v.walk(x.CaseExpr.Defresult)
	case *pg_query.Node_CaseWhen:
		v.walk(x.CaseWhen.Expr)
		v.walk(x.CaseWhen.Result)
	case *pg_query.Node_FuncCall:
		fc := x.FuncCall
		schema, name := funcName(fc.Funcname)
		if name == "" || name == "set_config" || !v.p.FunctionAllowed(schema, name) {
			v.fail("function %s is not allowed", strings.TrimPrefix(schema+"."+name, "."))
			return
		}
		if fc.Over != nil || fc.AggFilter != nil || len(fc.AggOrder) > 0 || fc.AggStar || aggregateFunctions[name] {
			v.fail("aggregate and window functions are not allowed in policy expressions")
			return
		}
		v.walkList(fc.Args)
	default:
		v.fail("%s is not allowed in policy expressions", nodeName(n))
	}
}

// funcName splits a FuncCall's name list; name is "" for shapes we do not accept.
func funcName(names []*pg_query.Node) (schema, name string) {
	switch len(names) {
	case 1:
		return "", names[0].GetString_().GetSval()
	case 2:
		return names[0].GetString_().GetSval(), names[1].GetString_().GetSval()
	}
	return "", ""
}

// FuncName splits a FuncCall's name into schema (maybe "") and name; name is
// "" for shapes that are never allowed (catalog-qualified names).
func FuncName(names []*pg_query.Node) (schema, name string) { return funcName(names) }

// nodeName is a readable name of a node's kind, for errors.
func nodeName(n *pg_query.Node) string {
	s := fmt.Sprintf("%T", n.Node)
	s = strings.TrimPrefix(s, "*pg_query.Node_")
	return strings.TrimSuffix(s, "_")
}

// yamlError names the file and line of a YAML error and words unknown
// fields plainly (the decoder names internal Go types).
func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", filename, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if before, after, ok := strings.Cut(m, ": field "); ok {
			if field, _, ok := strings.Cut(after, " not found in type"); ok {
				m = fmt.Sprintf("%s: unknown field %q", before, field)
			}
		}
		msgs[i] = fmt.Sprintf("%s: %s", filename, m)
	}
	return errors.New(strings.Join(msgs, "\n"))
}
