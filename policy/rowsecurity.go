package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// RowSecurity is the policy's row_security block: what pgwarden sets on a
// warehouse connection for as long as a session holds it, for the
// warehouse's own policies (CREATE POLICY ... USING) to read.
//
//	row_security:
//	  role: "tenant_{{tenant}}"        # SET ROLE; placeholders tenant, role, external_id
//	  settings:
//	    prefix: app                    # app.tenant, app.external_id, app.email, app.groups, app.role
//	    claims: request.jwt.claims     # the session's claims as JSON, as PostgREST policies read
type RowSecurity struct {
	// RoleTemplate names the role to SET ROLE to ("" keeps the service
	// account's): {{tenant}}, {{role}} (the connection role) and
	// {{external_id}} are replaced by the session's.
	RoleTemplate string
	// Prefix, if set, gets <prefix>.tenant and the other identity settings.
	Prefix string
	// Claims, if set, names the setting that holds the claims as JSON.
	Claims string
}

type fileRowSecurity struct {
	Role     string               `yaml:"role"`
	Settings *fileRowSecuritySets `yaml:"settings"`
}

type fileRowSecuritySets struct {
	Prefix string `yaml:"prefix"`
	Claims string `yaml:"claims"`
}

var (
	settingPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	settingName   = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$`)
)

// reservedPrefixes are custom-setting prefixes pgwarden or PostgreSQL use.
var reservedPrefixes = map[string]bool{"pgwarden": true, "pg": true, "plpgsql": true}

func parseRowSecurity(filename string, f *fileRowSecurity) (*RowSecurity, error) {
	where := filename + ": row_security"
	rs := &RowSecurity{RoleTemplate: f.Role}
	if f.Settings != nil {
		rs.Prefix, rs.Claims = f.Settings.Prefix, f.Settings.Claims
	}
	if rs.RoleTemplate == "" && rs.Prefix == "" && rs.Claims == "" {
		return nil, fmt.Errorf("%s: set role, settings.prefix or settings.claims (what the warehouse's policies read)", where)
	}
	if rs.RoleTemplate != "" {
		if _, err := expandRole(rs.RoleTemplate, &Identity{Tenant: "t", Role: RoleQuerier, ExternalID: "x"}); err != nil {
			return nil, fmt.Errorf("%s.role: %w", where, err)
		}
	}
	if rs.Prefix != "" && (!settingPrefix.MatchString(rs.Prefix) || reservedPrefixes[rs.Prefix]) {
		return nil, fmt.Errorf("%s.settings.prefix: %q is not a custom setting prefix (lowercase letters, digits, _; not pgwarden or pg)", where, rs.Prefix)
	}
	if rs.Claims != "" {
		p, _, _ := strings.Cut(rs.Claims, ".")
		if !settingName.MatchString(rs.Claims) || reservedPrefixes[p] {
			return nil, fmt.Errorf("%s.settings.claims: %q is not a custom setting name (prefix.name, lowercase)", where, rs.Claims)
		}
		if rs.Prefix != "" && p == rs.Prefix {
			for _, s := range identitySettings {
				if rs.Claims == rs.Prefix+"."+s {
					return nil, fmt.Errorf("%s.settings.claims: %q is one of the prefix's own settings", where, rs.Claims)
				}
			}
		}
	}
	return rs, nil
}

// identitySettings are the settings under Prefix, in the order they are set.
var identitySettings = []string{"tenant", "external_id", "email", "groups", "role"}

// expandRole fills a role template for id.
func expandRole(tmpl string, id *Identity) (string, error) {
	var b strings.Builder
	src := tmpl
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			if strings.Contains(src, "}}") {
				return "", fmt.Errorf("unmatched }}")
			}
			b.WriteString(src)
			break
		}
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			return "", fmt.Errorf("unterminated placeholder")
		}
		b.WriteString(src[:i])
		switch name := strings.TrimSpace(src[i+2 : i+j]); name {
		case "tenant":
			b.WriteString(id.Tenant)
		case "role":
			b.WriteString(string(id.Role))
		case "external_id":
			b.WriteString(id.ExternalID)
		default:
			return "", fmt.Errorf("unknown placeholder {{%s}} (want tenant, role or external_id)", name)
		}
		src = src[i+j+2:]
	}
	role := b.String()
	// PostgreSQL truncates longer names to NAMEDATALEN-1 bytes, which could
	// make two tenants' roles one.
	if role == "" || len(role) > 63 || strings.ContainsRune(role, 0) {
		return "", fmt.Errorf("role name %q is empty, longer than 63 bytes or has a NUL", role)
	}
	return role, nil
}

// Setting is one transaction-independent setting pgwarden sets.
type Setting struct{ Name, Value string }

// SessionRowSecurity is what one session's connections run under.
type SessionRowSecurity struct {
	Role     string // "" keeps the service account's
	Settings []Setting
}

// For returns what id's connections run under. It fails for an identity
// the template cannot name a role for (a tenant of more than 63 bytes).
func (rs *RowSecurity) For(id *Identity) (*SessionRowSecurity, error) {
	out := &SessionRowSecurity{}
	if rs.RoleTemplate != "" {
		role, err := expandRole(rs.RoleTemplate, id)
		if err != nil {
			return nil, fmt.Errorf("row_security.role: %w", err)
		}
		out.Role = role
	}
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	if rs.Prefix != "" {
		gj, _ := json.Marshal(groups)
		for _, s := range []Setting{{"tenant", id.Tenant}, {"external_id", id.ExternalID}, {"email", id.Email},
			{"groups", string(gj)}, {"role", string(id.Role)}} {
			out.Settings = append(out.Settings, Setting{rs.Prefix + "." + s.Name, s.Value})
		}
	}
	if rs.Claims != "" {
		attrs := id.Attributes
		if attrs == nil {
			attrs = map[string][]string{}
		}
		claims := struct {
			Tenant     string              `json:"tenant"`
			Sub        string              `json:"sub"`
			Email      string              `json:"email,omitempty"`
			Groups     []string            `json:"groups"`
			Attributes map[string][]string `json:"attributes"`
			Role       string              `json:"role,omitempty"`
			ConnRole   string              `json:"connection_role"`
			Kind       string              `json:"kind"`
		}{id.Tenant, id.ExternalID, id.Email, groups, attrs, out.Role, string(id.Role), string(id.Kind)}
		cj, err := json.Marshal(claims)
		if err != nil {
			return nil, err
		}
		out.Settings = append(out.Settings, Setting{rs.Claims, string(cj)})
	}
	for _, s := range out.Settings {
		if strings.ContainsRune(s.Value, 0) {
			return nil, fmt.Errorf("row_security: setting %s would hold a NUL character", s.Name)
		}
	}
	return out, nil
}

// Names are the settings For sets, role first when there is one ("role"),
// for the rewriter to keep clients from setting, resetting or reading them
// otherwise than pgwarden does.
func (rs *RowSecurity) Names() []string {
	var out []string
	if rs.RoleTemplate != "" {
		out = append(out, "role")
	}
	if rs.Prefix != "" {
		for _, s := range identitySettings {
			out = append(out, rs.Prefix+"."+s)
		}
	}
	if rs.Claims != "" {
		out = append(out, rs.Claims)
	}
	return out
}

// SetSQL is the statement that puts s on a connection, session-wide: it runs
// in a transaction of its own before the client's first statement, so no
// ROLLBACK, ROLLBACK TO or aborted transaction of the client's undoes it.
func (s *SessionRowSecurity) SetSQL() string {
	var parts []string
	if s.Role != "" {
		parts = append(parts, "pg_catalog.set_config('role', "+QuoteLiteral(s.Role)+", false)")
	}
	for _, st := range s.Settings {
		parts = append(parts, "pg_catalog.set_config("+QuoteLiteral(st.Name)+", "+QuoteLiteral(st.Value)+", false)")
	}
	return "SELECT " + strings.Join(parts, ", ")
}

// ResetSQL returns a connection to the service account with none of s's
// settings, and answers one row with one column, "t" when that holds. One
// statement: the subquery's set_config calls run before the outer checks.
func (s *SessionRowSecurity) ResetSQL() string {
	var sets []string
	checks := []string{"current_user = session_user"}
	if s.Role != "" {
		sets = append(sets, "pg_catalog.set_config('role', 'none', false)")
	}
	for _, st := range s.Settings {
		sets = append(sets, "pg_catalog.set_config("+QuoteLiteral(st.Name)+", '', false)")
		checks = append(checks, fmt.Sprintf("pg_catalog.current_setting(%s, true) = ''", QuoteLiteral(st.Name)))
	}
	if len(sets) == 0 {
		sets = append(sets, "1")
	}
	return "SELECT " + strings.Join(checks, " AND ") + " FROM (SELECT " + strings.Join(sets, ", ") + " OFFSET 0) AS reset"
}

// QuoteLiteral quotes s as a standard-conforming SQL string literal (the
// proxy pins standard_conforming_strings on every warehouse connection).
func QuoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// parsePassthrough sets up a relation the warehouse's own row security
// guards (tenancy: passthrough).
func (p *Policy) parsePassthrough(r *Relation, fr fileRelation, where string) error {
	if p.RowSecurity == nil {
		return fmt.Errorf("%s.tenancy: passthrough needs the policy's row_security block (what the warehouse's policies read)", where)
	}
	r.Tenancy = TenancyPassthrough
	if fr.Rewrite == nil || *fr.Rewrite {
		// Defence in depth: the rewriter's fence as well. Without a tenant
		// column the relation is shared as far as pgwarden can tell.
		if fr.TenantColumn == "" {
			r.Shared = true
		}
		return nil
	}
	if fr.TenantColumn != "" || len(fr.Filters) > 0 || len(fr.Columns) > 0 {
		return fmt.Errorf("%s.rewrite: a relation pgwarden does not rewrite has no tenant_column, filters or columns", where)
	}
	r.Rewrite, r.Shared = false, true
	return nil
}
