package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Introspection says which statements a viewer may run besides the listed
// ones, for what drivers and BI tools send on connect.
type Introspection string

const (
	// IntrospectCatalog allows statements that read no relation of the
	// policy (catalog queries, SELECT 1, version()), besides settings,
	// SHOW and transaction control. The default.
	IntrospectCatalog Introspection = "catalog"
	// IntrospectNone allows only settings, SHOW and transaction control.
	IntrospectNone Introspection = "none"
)

// Content is a warehouse's allow-list of statements ("content"): when a
// policy has one, viewer sessions may run only the statements it lists.
type Content struct {
	Introspection Introspection
	// Learn records (and allows) what viewer sessions send that is not
	// listed, on the whole warehouse; LearnTenants does so only for the
	// sessions of these (test) tenants.
	Learn        bool
	LearnTenants []string
	Statements   []*ContentStatement

	byFingerprint map[string][]*ContentStatement
	learnTenant   map[string]bool
}

// ContentStatement is one allowed statement.
type ContentStatement struct {
	Name string
	// SQL is the statement's normalized form, constants as $n parameters.
	SQL string
	// Fingerprint is pg_query's fingerprint of SQL: statements that differ
	// only in their constants (and IN-list lengths, aliases' names) share it.
	Fingerprint string
	// Params constrain the value of parameter $n (by n).
	Params map[int]*ParamConstraint
	// Groups and Roles, when set, limit the entry to sessions in one of the
	// groups and with one of the connection roles.
	Groups []string
	Roles  []Role

	// slots is the number of constants and parameters of SQL, in text
	// order; slotOf maps a constrained $n to its index among them.
	slots  int
	slotOf map[int]int
}

// ParamConstraint limits one parameter's value: one of Values (compared as
// text, as the literal reads: 'EU', 42, -1.5), and/or within Min and Max
// (numbers).
type ParamConstraint struct {
	Values []string
	Min    *float64
	Max    *float64
}

// Learns reports whether unlisted statements of a session of tenant are
// recorded and allowed.
func (c *Content) Learns(tenant string) bool {
	return c.Learn || (tenant != "" && c.learnTenant[tenant])
}

// Match returns the entries with fingerprint fp that apply to id.
func (c *Content) Match(fp string, id *Identity) []*ContentStatement {
	var out []*ContentStatement
	for _, s := range c.byFingerprint[fp] {
		if len(s.Groups) > 0 && !id.InGroup(s.Groups...) {
			continue
		}
		if len(s.Roles) > 0 && !roleIn(id.Role, s.Roles) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func roleIn(r Role, rs []Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// Constrained reports whether the entry constrains any parameter.
func (s *ContentStatement) Constrained() bool { return len(s.Params) > 0 }

// Check checks the constant slots of a client statement with the entry's
// fingerprint (ConstSlots of its tree) against the entry's constraints.
// It returns "" when they pass, or why not.
func (s *ContentStatement) Check(slots []ConstSlot) string {
	if !s.Constrained() {
		return ""
	}
	if len(slots) != s.slots {
		return fmt.Sprintf("statement %q constrains its parameters, and this statement has %d constants where it has %d", s.Name, len(slots), s.slots)
	}
	nums := make([]int, 0, len(s.Params))
	for n := range s.Params {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		slot := slots[s.slotOf[n]]
		if slot.Param {
			return fmt.Sprintf("parameter $%d of statement %q is constrained: send its value as a literal", n, s.Name)
		}
		if !s.Params[n].allows(slot) {
			return fmt.Sprintf("value of parameter $%d is not allowed by statement %q", n, s.Name)
		}
	}
	return ""
}

func (pc *ParamConstraint) allows(v ConstSlot) bool {
	if v.Null {
		return false
	}
	if len(pc.Values) > 0 {
		ok := false
		for _, want := range pc.Values {
			if want == v.Text {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if pc.Min != nil || pc.Max != nil {
		if !v.Number {
			return false
		}
		f, err := strconv.ParseFloat(v.Text, 64)
		if err != nil || (pc.Min != nil && f < *pc.Min) || (pc.Max != nil && f > *pc.Max) {
			return false
		}
	}
	return true
}

// ConstSlot is one constant or parameter of a statement, in text order.
type ConstSlot struct {
	Location int32
	// Param is a $n parameter (its value is bound unseen); Number is N.
	Param bool
	N     int32
	// Text is a constant's value as text (a string's content, a number's
	// digits with its sign); Number and Null say what it is.
	Text   string
	Number bool
	Null   bool
}

// ConstSlots lists the constants (A_Const) and parameters (ParamRef) of a
// parse tree in text order. It walks the tree generically (protobuf
// reflection), so that no node kind can hide a constant from it.
func ConstSlots(msg proto.Message) []ConstSlot {
	var out []ConstSlot
	collectSlots(msg.ProtoReflect(), &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	return out
}

func collectSlots(m protoreflect.Message, out *[]ConstSlot) {
	switch x := m.Interface().(type) {
	case *pg_query.A_Const:
		*out = append(*out, constSlot(x))
		return
	case *pg_query.ParamRef:
		*out = append(*out, ConstSlot{Location: x.Location, Param: true, N: x.Number})
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				collectSlots(l.Get(i).Message(), out)
			}
		case fd.IsMap():
		case fd.Kind() == protoreflect.MessageKind:
			collectSlots(v.Message(), out)
		}
		return true
	})
}

func constSlot(c *pg_query.A_Const) ConstSlot {
	s := ConstSlot{Location: c.Location}
	switch {
	case c.Isnull:
		s.Null = true
	case c.GetIval() != nil:
		s.Text, s.Number = strconv.FormatInt(int64(c.GetIval().Ival), 10), true
	case c.GetFval() != nil:
		s.Text, s.Number = c.GetFval().Fval, true
	case c.GetSval() != nil:
		s.Text = c.GetSval().Sval
	case c.GetBoolval() != nil:
		s.Text = strconv.FormatBool(c.GetBoolval().Boolval)
	case c.GetBsval() != nil:
		s.Text = c.GetBsval().Bsval
	default:
		// A kind of constant this walk does not know: no value any
		// constraint accepts.
		s.Null = true
	}
	return s
}

// The YAML shapes of the content section.
type fileContent struct {
	Introspection string             `yaml:"introspection"`
	Learn         bool               `yaml:"learn"`
	LearnTenants  []string           `yaml:"learn_tenants"`
	Statements    []fileContentEntry `yaml:"statements"`
}

type fileContentEntry struct {
	Name   string                `yaml:"name"`
	SQL    string                `yaml:"sql"`
	Params map[int]fileParamRule `yaml:"params"`
	Groups []string              `yaml:"groups"`
	Roles  []string              `yaml:"roles"`
}

type fileParamRule struct {
	Values []string `yaml:"values"`
	Min    *float64 `yaml:"min"`
	Max    *float64 `yaml:"max"`
}

func (p *Policy) parseContent(fc *fileContent) (*Content, error) {
	where := p.File + ": content"
	c := &Content{Introspection: Introspection(fc.Introspection), Learn: fc.Learn, LearnTenants: fc.LearnTenants,
		byFingerprint: map[string][]*ContentStatement{}, learnTenant: map[string]bool{}}
	switch c.Introspection {
	case "":
		c.Introspection = IntrospectCatalog
	case IntrospectCatalog, IntrospectNone:
	default:
		return nil, fmt.Errorf("%s.introspection: unknown value %q (want catalog or none)", where, fc.Introspection)
	}
	for i, t := range fc.LearnTenants {
		if !p.KnowsTenant(t) {
			return nil, fmt.Errorf("%s.learn_tenants[%d]: unknown tenant %q", where, i, t)
		}
		c.learnTenant[t] = true
	}
	names := map[string]bool{}
	for i, fe := range fc.Statements {
		at := fmt.Sprintf("%s.statements[%d]", where, i)
		if fe.Name == "" {
			return nil, fmt.Errorf("%s.name: missing", at)
		}
		if names[fe.Name] {
			return nil, fmt.Errorf("%s.name: %q listed twice", at, fe.Name)
		}
		names[fe.Name] = true
		s, err := p.parseContentEntry(fe)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", at, err)
		}
		c.Statements = append(c.Statements, s)
		c.byFingerprint[s.Fingerprint] = append(c.byFingerprint[s.Fingerprint], s)
	}
	return c, nil
}

func (p *Policy) parseContentEntry(fe fileContentEntry) (*ContentStatement, error) {
	s := &ContentStatement{Name: fe.Name, SQL: strings.TrimSpace(fe.SQL), Groups: fe.Groups, Params: map[int]*ParamConstraint{}, slotOf: map[int]int{}}
	if s.SQL == "" {
		return nil, fmt.Errorf("sql: missing")
	}
	tree, err := pg_query.Parse(s.SQL)
	if err != nil {
		return nil, fmt.Errorf("sql: parse error: %v", err)
	}
	if len(tree.Stmts) != 1 {
		return nil, fmt.Errorf("sql: want exactly one statement")
	}
	if s.Fingerprint, err = pg_query.Fingerprint(s.SQL); err != nil {
		return nil, fmt.Errorf("sql: %v", err)
	}
	for i, g := range fe.Groups {
		if !p.KnowsGroup(g) {
			return nil, fmt.Errorf("groups[%d]: unknown group %q", i, g)
		}
	}
	for i, r := range fe.Roles {
		role := Role(r)
		if !role.Valid() || role == RoleNoAccess {
			return nil, fmt.Errorf("roles[%d]: %q is not a connection role that can run statements (viewer, restricted_querier, querier)", i, r)
		}
		s.Roles = append(s.Roles, role)
	}
	slots := ConstSlots(tree)
	s.slots = len(slots)
	for n, rule := range fe.Params {
		at := fmt.Sprintf("params.%d", n)
		idx := -1
		for k, sl := range slots {
			if sl.Param && int(sl.N) == n {
				if idx >= 0 {
					return nil, fmt.Errorf("%s: $%d appears more than once; constrain a statement whose parameters each appear once", at, n)
				}
				idx = k
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%s: the statement has no parameter $%d", at, n)
		}
		if len(rule.Values) == 0 && rule.Min == nil && rule.Max == nil {
			return nil, fmt.Errorf("%s: want values, min and/or max", at)
		}
		if rule.Min != nil && rule.Max != nil && *rule.Min > *rule.Max {
			return nil, fmt.Errorf("%s: min is above max", at)
		}
		s.Params[n] = &ParamConstraint{Values: rule.Values, Min: rule.Min, Max: rule.Max}
		s.slotOf[n] = idx
	}
	return s, nil
}
