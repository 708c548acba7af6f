package rewrite

import (
	"math"
	"strconv"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgwarden/pgwarden/pgerr"
)

// catalogRelations are the pg_catalog relations that pass as they are: they
// describe nothing a policy hides. The others that drivers and tools read
// are virtualized (catalog.go, which is consulted first); statistics of
// values (pg_stats, pg_statistic) stay refused.
var catalogRelations = map[string]bool{
	"pg_collation": true,
	// Time zone names and abbreviations: the same in every database.
	"pg_timezone_names": true, "pg_timezone_abbrevs": true,
}

// settableSettings may be changed with SET, RESET and set_config.
var settableSettings = map[string]bool{
	"datestyle": true, "timezone": true, "intervalstyle": true, "extra_float_digits": true,
	"application_name": true, "client_encoding": true, "client_min_messages": true, "statement_timeout": true,
	"lock_timeout": true, "idle_in_transaction_session_timeout": true, "standard_conforming_strings": true,
	"bytea_output": true, "lc_monetary": true, "lc_numeric": true, "lc_time": true, "xmloption": true,
	"default_transaction_isolation": true, "transaction_isolation": true, "timezone_abbreviations": true, "escape_string_warning": true,
	// What tools send to tune the planner for their queries: they change
	// plans, never what a plan may read. work_mem is capped (checkCap).
	"work_mem": true, "jit": true, "jit_above_cost": true, "jit_inline_above_cost": true, "jit_optimize_above_cost": true,
	"random_page_cost": true, "seq_page_cost": true, "cpu_tuple_cost": true, "cpu_index_tuple_cost": true,
	"cpu_operator_cost": true, "effective_cache_size": true, "plan_cache_mode": true, "cursor_tuple_fraction": true,
	"from_collapse_limit": true, "join_collapse_limit": true, "geqo": true,
	"enable_async_append": true, "enable_bitmapscan": true, "enable_gathermerge": true, "enable_hashagg": true,
	"enable_hashjoin": true, "enable_incremental_sort": true, "enable_indexonlyscan": true, "enable_indexscan": true,
	"enable_material": true, "enable_memoize": true, "enable_mergejoin": true, "enable_nestloop": true,
	"enable_parallel_append": true, "enable_parallel_hash": true, "enable_partition_pruning": true,
	"enable_partitionwise_aggregate": true, "enable_partitionwise_join": true, "enable_presorted_aggregate": true,
	"enable_seqscan": true, "enable_sort": true, "enable_tidscan": true, "enable_group_by_reordering": true,
}

// cappedSettings have a limit SET checks; set_config, whose value may be
// any expression, may not change them.
var cappedSettings = map[string]bool{"statement_timeout": true, "work_mem": true}

// showableSettings may be read with SHOW and current_setting.
var showableSettings = map[string]bool{
	"server_version": true, "server_version_num": true, "server_encoding": true, "integer_datetimes": true,
	"max_identifier_length": true, "lc_collate": true, "lc_ctype": true, "transaction isolation level": true,
	"block_size": true, "max_index_keys": true, "in_hot_standby": true, "transaction_read_only": true,
	"default_transaction_read_only": true, "search_path": true, // readable; SET refuses it
}

func settingShowable(name string) bool {
	return settableSettings[name] || showableSettings[name]
}

func (p *pass) show(s *pg_query.VariableShowStmt) {
	name := strings.ToLower(s.Name)
	if !settingShowable(name) {
		p.fail(pgerr.Denied("permission denied to show parameter %q", s.Name))
	}
}

// set checks SET/RESET and describes it for the proxy.
func (p *pass) set(s *pg_query.VariableSetStmt) Statement {
	st := Statement{Kind: KindSet, SetName: strings.ToLower(s.Name), SetLocal: s.IsLocal}
	switch s.Kind {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		st.SetName = "all"
		p.keepRowSecurity("RESET ALL")
		return st
	case pg_query.VariableSetKind_VAR_SET_MULTI:
		switch s.Name {
		case "TRANSACTION":
			p.transactionOptions(s.Args)
			return Statement{Kind: KindTransaction}
		case "SESSION CHARACTERISTICS":
			return p.sessionCharacteristics(s)
		}
		p.fail(pgerr.Denied("permission denied to set %s", strings.ToLower(s.Name)))
		return st
	case pg_query.VariableSetKind_VAR_SET_VALUE, pg_query.VariableSetKind_VAR_SET_DEFAULT,
		pg_query.VariableSetKind_VAR_SET_CURRENT, pg_query.VariableSetKind_VAR_RESET:
	default:
		p.fail(pgerr.Unsupported("SET of kind %s is not supported", s.Kind))
		return st
	}
	if st.SetName == "search_path" {
		return p.setSearchPath(s, st)
	}
	if !settableSettings[st.SetName] {
		p.fail(pgerr.Denied("permission denied to set parameter %q", s.Name))
		return st
	}
	if s.Kind != pg_query.VariableSetKind_VAR_SET_VALUE {
		return st
	}
	vals := make([]string, 0, len(s.Args))
	for _, a := range s.Args {
		c := a.GetAConst()
		if c == nil {
			p.unsupported("SET value " + nodeKind(a))
			return st
		}
		vals = append(vals, constText(c))
	}
	st.SetValue = strings.Join(vals, ", ")
	switch st.SetName {
	case "statement_timeout":
		p.checkCap(st.SetName, st.SetValue, int64(p.r.opts.MaxStatementTimeout), parseTimeout,
			func(n int64) string { return time.Duration(n).String() })
	case "standard_conforming_strings":
		// The warehouse lexes the rewritten text with it on (the proxy
		// pins it), and pg_query parses the client's text so.
		if !isOn(st.SetValue) {
			p.fail(pgerr.Unsupported("standard_conforming_strings cannot be turned off through pgwarden").
				WithHint("write backslash escapes as E'...' strings"))
		}
	case "work_mem":
		p.checkCap(st.SetName, st.SetValue, p.r.opts.MaxWorkMem, parseMemory, formatMemory)
	}
	return st
}

// isOn reports a boolean setting's value that means on, as PostgreSQL's
// parse_bool reads it.
func isOn(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "yes", "1", "t", "y", "tr", "tru", "ye":
		return true
	}
	return false
}

// checkCap refuses a value of a capped setting (cappedSettings) that parse
// cannot read (22023, as PostgreSQL) or that exceeds limit; show prints the
// limit in the setting's units. A limit of 0 or less caps nothing.
func (p *pass) checkCap(name, val string, limit int64, parse func(string) (int64, bool), show func(int64) string) {
	if limit <= 0 {
		return
	}
	n, ok := parse(val)
	if !ok {
		p.fail(pgerr.New(pgerr.InvalidParameterValue, "invalid value for parameter \"%s\": %q", name, val))
		return
	}
	if n > limit {
		p.fail(pgerr.Denied("permission denied to set %s above %s", name, show(limit)))
	}
}

// parseUnits reads a number with an optional unit as PostgreSQL reads
// settings: an integer or decimal, then one of units ("" when absent).
func parseUnits(v string, units map[string]float64) (float64, bool) {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, err := strconv.ParseFloat(v[:i], 64)
	if err != nil || num < 0 {
		return 0, false
	}
	u, ok := units[strings.TrimSpace(v[i:])]
	if !ok || num*u > 1<<62 {
		return 0, false
	}
	return num * u, true
}

var memoryUnits = map[string]float64{"": 1 << 10, "B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

// parseMemory reads a memory setting as PostgreSQL does: an integer or
// decimal with an optional unit (B, kB, MB, GB, TB; kB when absent). It
// returns bytes.
func parseMemory(v string) (int64, bool) {
	n, ok := parseUnits(v, memoryUnits)
	return int64(n), ok
}

// formatMemory prints bytes in the largest unit that divides them.
func formatMemory(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// constText is the text of a constant as SET receives it.
func constText(c *pg_query.A_Const) string {
	switch v := c.Val.(type) {
	case *pg_query.A_Const_Sval:
		return v.Sval.Sval
	case *pg_query.A_Const_Ival:
		return strconv.FormatInt(int64(v.Ival.Ival), 10)
	case *pg_query.A_Const_Fval:
		return v.Fval.Fval
	case *pg_query.A_Const_Boolval:
		if v.Boolval.Boolval {
			return "on"
		}
		return "off"
	}
	return ""
}

var timeoutUnits = map[string]float64{"": float64(time.Millisecond), "us": float64(time.Microsecond),
	"ms": float64(time.Millisecond), "s": float64(time.Second), "min": float64(time.Minute), "h": float64(time.Hour),
	"d": float64(24 * time.Hour)}

// ParseTimeout reads a statement_timeout value as PostgreSQL does
// (milliseconds without a unit); 0 disables the timeout.
func ParseTimeout(v string) (time.Duration, bool) {
	n, ok := parseUnits(v, timeoutUnits)
	return time.Duration(n), ok
}

// parseTimeout is ParseTimeout in nanoseconds for checkCap, where 0, no
// timeout, exceeds any cap.
func parseTimeout(v string) (int64, bool) {
	d, ok := ParseTimeout(v)
	if ok && d == 0 {
		return math.MaxInt64, true
	}
	return int64(d), ok
}

// settingFunc restricts current_setting and set_config to allow-listed names
// given as constants, and returns the setting named (lower case; "" for a
// call with no argument, which the warehouse refuses).
func (p *pass) settingFunc(name string, args []*pg_query.Node) string {
	if len(args) == 0 {
		return ""
	}
	c := args[0].GetAConst()
	sv := c.GetSval()
	if sv == nil {
		p.fail(pgerr.Denied("permission denied: %s needs a constant setting name", name))
		return ""
	}
	setting := strings.ToLower(sv.Sval)
	switch name {
	case "current_setting":
		if !settingShowable(setting) {
			p.fail(pgerr.Denied("permission denied to show parameter %q", sv.Sval))
		}
	case "set_config":
		// client_encoding and standard_conforming_strings decide how the
		// warehouse reads the statements the proxy sends: the proxy pins
		// them there, and SET client_encoding is the proxy's, not the
		// warehouse's; set_config would change them behind its back.
		if !settableSettings[setting] || setting == "client_encoding" || setting == "standard_conforming_strings" {
			p.fail(pgerr.Denied("permission denied to set parameter %q", sv.Sval))
		} else if cappedSettings[setting] {
			p.fail(pgerr.Denied("permission denied to set parameter %q with set_config", sv.Sval).
				WithHint("use SET %s, which checks the limit pgwarden sets for it", setting))
		}
	}
	return setting
}

func (p *pass) transaction(t *pg_query.TransactionStmt) {
	switch t.Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		p.transactionOptions(t.Options)
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT, pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK,
		pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg_query.TransactionStmtKind_TRANS_STMT_RELEASE,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
	default:
		p.fail(pgerr.Denied("permission denied: prepared transactions are not allowed"))
	}
}

// sessionCharacteristics turns SET SESSION CHARACTERISTICS AS TRANSACTION …
// (pgjdbc's setReadOnly sends it) into the equivalent SET
// default_transaction_…, in place: a plain setting that the proxy tracks and
// replays like any other. READ WRITE stays refused.
func (p *pass) sessionCharacteristics(s *pg_query.VariableSetStmt) Statement {
	p.transactionOptions(s.Args)
	if p.err != nil {
		return Statement{}
	}
	if len(s.Args) != 1 {
		p.fail(pgerr.Unsupported("SET SESSION CHARACTERISTICS with several options is not supported").
			WithHint("set one characteristic per statement"))
		return Statement{}
	}
	d := s.Args[0].GetDefElem()
	c := d.Arg.GetAConst()
	if c == nil {
		p.unsupported("transaction option value " + nodeKind(d.Arg))
		return Statement{}
	}
	s.Kind = pg_query.VariableSetKind_VAR_SET_VALUE
	s.Name = "default_" + d.Defname
	s.Args = []*pg_query.Node{d.Arg}
	return Statement{Kind: KindSet, SetName: s.Name, SetValue: constText(c)}
}

// transactionOptions refuses READ WRITE; isolation levels and DEFERRABLE are fine.
func (p *pass) transactionOptions(opts []*pg_query.Node) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil {
			p.unsupported("transaction option " + nodeKind(o))
			return
		}
		switch d.Defname {
		case "transaction_read_only":
			if c := d.Arg.GetAConst(); (c == nil || c.GetIval().GetIval() == 0) && !p.r.pol.HasWrites() {
				p.fail(pgerr.Denied("permission denied: READ WRITE transactions are not allowed"))
				return
			}
		case "transaction_isolation", "transaction_deferrable":
		default:
			p.unsupported("transaction option " + d.Defname)
			return
		}
	}
}

// explainOptions are the EXPLAIN options allowed, none of which runs the
// statement. COSTS is forced off (see explain).
var explainOptions = map[string]bool{
	"verbose": true, "costs": true, "format": true, "summary": true, "generic_plan": true,
}

// explain allows EXPLAIN of a SELECT without ANALYZE, and always with COSTS
// OFF. Row estimates come from table-wide statistics: with costs on, an
// estimate for a client's condition above the fence would say how common a
// value is among every tenant's rows. ANALYZE is refused: a scan below the
// fence reports "Rows Removed by Filter", other tenants' row count, and
// no option turns that off. BUFFERS, WAL, TIMING and SETTINGS are refused
// too (the last shows the warehouse's configuration).
func (p *pass) explain(e *pg_query.ExplainStmt) {
	opts := e.Options[:0]
	for _, o := range e.Options {
		d := o.GetDefElem()
		if d == nil {
			p.unsupported("EXPLAIN option " + nodeKind(o))
			return
		}
		if d.Defname == "analyze" {
			if optionOn(d.Arg) {
				p.fail(pgerr.Denied("permission denied: EXPLAIN ANALYZE is not allowed").
					WithHint("its row counts below the tenant fence would count other tenants' rows; EXPLAIN without ANALYZE is allowed"))
				return
			}
			continue
		}
		if !explainOptions[d.Defname] {
			p.fail(pgerr.Unsupported("EXPLAIN option %s is not supported", strings.ToUpper(d.Defname)))
			return
		}
		if d.Defname == "costs" {
			continue
		}
		opts = append(opts, o)
	}
	e.Options = append(opts, costsOff())
	p.query(e.Query, "EXPLAIN")
}

// optionOn interprets a boolean option's argument as PostgreSQL does
// (absent means true). Anything unrecognised counts as on: fail closed.
func optionOn(arg *pg_query.Node) bool {
	if arg == nil {
		return true
	}
	var s string
	if sv := arg.GetString_(); sv != nil {
		s = sv.Sval
	} else if c := arg.GetAConst(); c != nil {
		s = constText(c)
	} else {
		return true
	}
	switch strings.ToLower(s) {
	case "false", "off", "0", "no", "f", "n", "of":
		return false
	}
	return true
}

// keepRowSecurity refuses what would undo the role and settings pgwarden
// sets for the warehouse's own row security (policy.RowSecurity): RESET ALL
// clears the settings and DISCARD ALL the role too. (SET, RESET and
// set_config of the role or of those settings are refused by name, as
// every setting outside the allow-list is.)
func (p *pass) keepRowSecurity(what string) {
	if p.r.pol.RowSecurity == nil {
		return
	}
	p.fail(pgerr.Denied("permission denied: %s would reset the role and settings the warehouse's row security reads", what).
		WithHint("reset settings one by one (RESET name); pgwarden resets its own when the connection goes back to its pool"))
}
