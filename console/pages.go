package console

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/opstats"
)

// windows the overview offers.
var windows = []string{"5m", "15m", "1h"}

// chartedTenants is how many tenants get charts of their own on the
// overview (the table lists them all).
const chartedTenants = 8

type tenantRow struct {
	Tenant                       string
	Sessions, Connections        int
	Rate                         float64 // statements per second over the window
	Statements, Refusals, Errors int64
	Classes                      string
	Latency                      opstats.Latency
}

type tenantChart struct {
	Tenant             string
	Activity, Latency  template.HTML
	Refusals, Statemts int64
}

type poolChart struct {
	opstats.Pool
	Saturation, Waits template.HTML
}

type overviewData struct {
	Window     string
	Windows    []string
	Replicas   []admin.ReplicaStatus
	Incomplete bool
	Tenants    []tenantRow
	Charts     []tenantChart
	Pools      []poolChart
}

type sessionView struct {
	ID         string    `json:"session_id"`
	Kind       string    `json:"kind"`
	Tenant     string    `json:"tenant"`
	ExternalID string    `json:"external_id"`
	Subject    string    `json:"subject"`
	Role       string    `json:"role"`
	Email      string    `json:"email"`
	APIKey     string    `json:"api_key"`
	Created    time.Time `json:"created_at"`
	Expires    time.Time `json:"expires_at"`
}

type connectionsAnswer struct {
	Connections []admin.Connection    `json:"connections"`
	Replicas    []admin.ReplicaStatus `json:"replicas"`
	Incomplete  bool                  `json:"incomplete"`
}

// tenantName shows an internal user's own sessions, which have no tenant.
func tenantName(t string) string { return cmp.Or(t, opstats.Internal) }

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, u *user) {
	window := r.URL.Query().Get("window")
	if !slices.Contains(windows, window) {
		window = "15m"
	}
	var stats admin.StatsResponse
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/stats?window="+window, nil, &stats); !res.ok() {
		h.refused(w, r, u, "see the operational statistics", res)
		return
	}
	var sessions struct {
		Sessions []sessionView `json:"sessions"`
	}
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/sessions", nil, &sessions); !res.ok() {
		h.refused(w, r, u, "list sessions", res)
		return
	}
	var conns connectionsAnswer
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/connections", nil, &conns); !res.ok() {
		h.refused(w, r, u, "list connections", res)
		return
	}
	rows := map[string]*tenantRow{}
	row := func(t string) *tenantRow {
		if rows[t] == nil {
			rows[t] = &tenantRow{Tenant: t}
		}
		return rows[t]
	}
	for _, s := range sessions.Sessions {
		row(tenantName(s.Tenant)).Sessions++
	}
	for _, c := range conns.Connections {
		row(tenantName(c.Tenant)).Connections++
	}
	d := overviewData{Window: window, Windows: windows, Replicas: conns.Replicas, Incomplete: conns.Incomplete || stats.Incomplete}
	end := stats.Now.Unix()
	bucket := int64(max(stats.BucketSeconds, 1))
	start := end - int64(stats.WindowSeconds) + bucket
	for _, t := range stats.Tenants {
		tr := row(t.Tenant)
		tr.Statements, tr.Refusals, tr.Errors, tr.Latency = t.Statements, t.Refusals, t.Errors, t.Latency
		// The rate of the last minute (or bucket, when longer): what an
		// operator looking now wants, where the window's mean flattens it.
		recent := max(60, bucket)
		var n int64
		for _, p := range t.Points {
			if p.T > end-recent {
				n += p.Statements
			}
		}
		tr.Rate = float64(n) / float64(recent)
		var cls []string
		for c, n := range t.RefusalClasses {
			cls = append(cls, fmt.Sprintf("%s: %d", c, n))
		}
		sort.Strings(cls)
		tr.Classes = strings.Join(cls, ", ")
		if len(d.Charts) < chartedTenants && t.Statements > 0 {
			d.Charts = append(d.Charts, tenantChart{Tenant: t.Tenant, Refusals: t.Refusals, Statemts: t.Statements,
				Activity: activityChart(t, start, end, bucket), Latency: latencyChart(t, start, end, bucket)})
		}
	}
	for _, tr := range rows {
		d.Tenants = append(d.Tenants, *tr)
	}
	slices.SortFunc(d.Tenants, func(a, b tenantRow) int {
		return cmp.Or(cmp.Compare(b.Statements, a.Statements), cmp.Compare(b.Connections, a.Connections), cmp.Compare(a.Tenant, b.Tenant))
	})
	for _, p := range stats.Pools {
		d.Pools = append(d.Pools, poolChart{Pool: p, Saturation: saturationChart(p, start, end, bucket), Waits: waitChart(p, start, end, bucket)})
	}
	h.render(w, r, http.StatusOK, "overview", &page{Title: "Overview", Nav: "overview", User: u, Data: d})
}

type tenantGroup struct {
	Tenant      string
	Sessions    []sessionView
	Connections []admin.Connection
}

type connectionsData struct {
	Tenant     string
	Groups     []tenantGroup
	Replicas   []admin.ReplicaStatus
	Incomplete bool
}

func (h *Handler) connections(w http.ResponseWriter, r *http.Request, u *user) {
	tenant := r.URL.Query().Get("tenant")
	q := ""
	if tenant != "" && tenant != opstats.Internal {
		q = "?tenant=" + url.QueryEscape(tenant)
	}
	var conns connectionsAnswer
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/connections"+q, nil, &conns); !res.ok() {
		h.refused(w, r, u, "see sessions and connections", res)
		return
	}
	var sessions struct {
		Sessions []sessionView `json:"sessions"`
	}
	if res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/sessions"+q, nil, &sessions); !res.ok() {
		h.refused(w, r, u, "see sessions and connections", res)
		return
	}
	groups := map[string]*tenantGroup{}
	group := func(t string) *tenantGroup {
		t = tenantName(t)
		if groups[t] == nil {
			groups[t] = &tenantGroup{Tenant: t}
		}
		return groups[t]
	}
	for _, c := range conns.Connections {
		if tenant == opstats.Internal && c.Tenant != "" {
			continue
		}
		g := group(c.Tenant)
		g.Connections = append(g.Connections, c)
	}
	for _, s := range sessions.Sessions {
		if tenant == opstats.Internal && s.Tenant != "" {
			continue
		}
		g := group(s.Tenant)
		g.Sessions = append(g.Sessions, s)
	}
	d := connectionsData{Tenant: tenant, Replicas: conns.Replicas, Incomplete: conns.Incomplete}
	for _, g := range groups {
		d.Groups = append(d.Groups, *g)
	}
	slices.SortFunc(d.Groups, func(a, b tenantGroup) int { return cmp.Compare(a.Tenant, b.Tenant) })
	h.render(w, r, http.StatusOK, "connections", &page{Title: "Sessions and connections", Nav: "connections", User: u, Data: d})
}

// action is one of the buttons' operations: what the confirm step shows
// and the admin API call that does it.
type action struct {
	Do, ID, Tenant, ExternalID, Subject string
}

func actionOf(v url.Values) action {
	return action{Do: v.Get("do"), ID: v.Get("id"), Tenant: v.Get("tenant"), ExternalID: v.Get("external_id"), Subject: v.Get("subject")}
}

// describe says what a confirmed action does; "" for an unknown one.
func (a action) describe() string {
	switch {
	case a.Do == "cancel" && a.ID != "":
		return fmt.Sprintf("Cancel the statement running on connection %s? Its client gets 57014 (canceling statement due to user request); the connection stays open.", a.ID)
	case a.Do == "revoke-session" && a.ID != "":
		return fmt.Sprintf("Revoke session %s on every replica? Its connections are closed with FATAL and its token opens no new one.", a.ID)
	case a.Do == "revoke-external-id" && a.ExternalID != "":
		in := ""
		if a.Tenant != "" {
			in = " of tenant " + a.Tenant
		}
		return fmt.Sprintf("Revoke every live session of external id %s%s on every replica? Their connections are closed with FATAL.", a.ExternalID, in)
	case a.Do == "revoke-tenant" && a.Tenant != "":
		return fmt.Sprintf("Revoke every live session of tenant %s on every replica? All its users' connections are closed with FATAL.", a.Tenant)
	case a.Do == "revoke-subject" && a.Subject != "":
		return fmt.Sprintf("Revoke every session of internal user %s? Their provider tokens issued until now open no new session.", a.Subject)
	}
	return ""
}

// call is the admin API path of the action.
func (a action) call() string {
	switch a.Do {
	case "cancel":
		return "/v1/admin/connections/" + url.PathEscape(a.ID) + "/cancel"
	case "revoke-session":
		return "/v1/admin/sessions/" + url.PathEscape(a.ID) + "/revoke"
	case "revoke-external-id":
		p := "/v1/admin/external-ids/" + url.PathEscape(a.ExternalID) + "/revoke"
		if a.Tenant != "" {
			p += "?tenant=" + url.QueryEscape(a.Tenant)
		}
		return p
	case "revoke-tenant":
		return "/v1/admin/tenants/" + url.PathEscape(a.Tenant) + "/revoke"
	case "revoke-subject":
		return "/v1/admin/subjects/" + url.PathEscape(a.Subject) + "/revoke"
	}
	return ""
}

type confirmData struct {
	action
	Question string
	Back     string
}

func backTo(a action) string {
	if a.Tenant != "" {
		return Prefix + "connections?tenant=" + url.QueryEscape(a.Tenant)
	}
	return Prefix + "connections"
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, u *user) {
	a := actionOf(r.URL.Query())
	q := a.describe()
	if q == "" {
		h.render(w, r, http.StatusBadRequest, "error", &page{Title: "Unknown action", User: u, Message: "The console has no such action."})
		return
	}
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Confirm", Nav: "connections", User: u, Data: confirmData{action: a, Question: q, Back: backTo(a)}})
}

func (h *Handler) do(w http.ResponseWriter, r *http.Request, u *user) {
	a := actionOf(r.PostForm)
	if a.describe() == "" {
		h.render(w, r, http.StatusBadRequest, "error", &page{Title: "Unknown action", User: u, Message: "The console has no such action."})
		return
	}
	var out struct {
		Revoked []string `json:"revoked_sessions"`
		Spared  int      `json:"spared_owner_sessions"`
	}
	res := h.call(r.Context(), u, http.MethodPost, a.call(), nil, &out)
	if !res.ok() {
		h.refused(w, r, u, strings.ReplaceAll(a.Do, "-", " "), res)
		return
	}
	var msg string
	switch a.Do {
	case "cancel":
		msg = fmt.Sprintf("Cancelled the statement of connection %s.", a.ID)
	case "revoke-session":
		msg = fmt.Sprintf("Revoked session %s.", a.ID)
	default:
		msg = fmt.Sprintf("Revoked %d session(s).", len(out.Revoked))
		if out.Spared > 0 {
			msg += fmt.Sprintf(" %d Owner session(s) spared: your role may not revoke them.", out.Spared)
		}
	}
	h.render(w, r, http.StatusOK, "done", &page{Title: "Done", Nav: "connections", User: u, Message: msg, Data: backTo(a)})
}

type explainForm struct {
	Warehouse, SQL, Tenant, ExternalID, Groups, Attributes, Role string
	Internal                                                     bool
	Roles                                                        []string
}

type explainData struct {
	Form       explainForm
	Done       bool
	Statements []string
	Refused    *struct{ SQLState, Message string }
	Error      string
}

var explainRoles = []string{"querier", "restricted_querier", "viewer", "no_access"}

func (h *Handler) explainForm(w http.ResponseWriter, r *http.Request, u *user) {
	d := explainData{Form: explainForm{Role: "querier", Roles: explainRoles}}
	h.render(w, r, http.StatusOK, "explain", &page{Title: "Explain playground", Nav: "explain", User: u, Data: d})
}

// fields splits a list typed as commas, spaces or lines.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (h *Handler) explain(w http.ResponseWriter, r *http.Request, u *user) {
	f := r.PostForm
	form := explainForm{Warehouse: strings.TrimSpace(f.Get("warehouse")), SQL: f.Get("sql"), Tenant: strings.TrimSpace(f.Get("tenant")),
		ExternalID: strings.TrimSpace(f.Get("external_id")), Groups: f.Get("groups"), Attributes: f.Get("attributes"),
		Role: cmp.Or(f.Get("role"), "querier"), Internal: f.Get("internal") != "", Roles: explainRoles}
	d := explainData{Form: form, Done: true}
	attrs := map[string][]string{}
	for _, line := range strings.Split(form.Attributes, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			d.Error = fmt.Sprintf("attributes: %q is not name=value", line)
			h.render(w, r, http.StatusBadRequest, "explain", &page{Title: "Explain playground", Nav: "explain", User: u, Data: d})
			return
		}
		k = strings.TrimSpace(k)
		attrs[k] = append(attrs[k], strings.TrimSpace(v))
	}
	req := map[string]any{"warehouse": form.Warehouse, "sql": form.SQL, "tenant": form.Tenant, "external_id": form.ExternalID,
		"groups": fields(form.Groups), "attributes": attrs, "role": form.Role, "internal": form.Internal}
	var out struct {
		Statements []string `json:"statements"`
		Refused    *struct {
			SQLState string `json:"sqlstate"`
			Message  string `json:"message"`
		} `json:"refused"`
	}
	res := h.call(r.Context(), u, http.MethodPost, "/v1/admin/explain", req, &out)
	switch {
	case res.status == http.StatusForbidden || res.err != nil:
		h.refused(w, r, u, "use the explain playground", res)
		return
	case !res.ok():
		d.Error = res.message
	case out.Refused != nil:
		d.Refused = &struct{ SQLState, Message string }{out.Refused.SQLState, out.Refused.Message}
	default:
		d.Statements = out.Statements
	}
	h.render(w, r, http.StatusOK, "explain", &page{Title: "Explain playground", Nav: "explain", User: u, Data: d})
}
