package console

import (
	"net/http"
	"net/url"
	"slices"
	"time"
)

// auditFilters are the audit reader's filters the page offers, in order.
var auditFilters = []string{"tenant", "external_id", "subject", "session", "kind", "event", "outcome", "sqlstate", "warehouse", "since", "until"}

type auditRecord struct {
	Time          time.Time `json:"time"`
	Event         string    `json:"event"`
	Session       string    `json:"session"`
	Kind          string    `json:"kind"`
	Tenant        string    `json:"tenant"`
	ExternalID    string    `json:"external_id"`
	Subject       string    `json:"subject"`
	Role          string    `json:"role"`
	ActorSubject  string    `json:"actor_subject"`
	Warehouse     string    `json:"warehouse"`
	Fingerprint   string    `json:"fingerprint"`
	SQL           string    `json:"sql"`
	Outcome       string    `json:"outcome"`
	SQLState      string    `json:"sqlstate"`
	Rows          int64     `json:"rows"`
	DurationMS    float64   `json:"duration_ms"`
	Reason        string    `json:"reason"`
	ClientAddr    string    `json:"client_addr"`
	PolicyVersion string    `json:"policy_version"`
}

type auditFilter struct{ Name, Value string }

type auditData struct {
	Filters    []auditFilter
	Records    []auditRecord
	Next       string // the next page's URL, "" on the last
	Incomplete bool
	Dropped    int64
	Stored     bool
}

// audit pages through the audit trail (GET /v1/admin/audit), newest first,
// with the API's filters; the next page keeps them.
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, u *user) {
	in := r.URL.Query()
	q := url.Values{}
	d := auditData{}
	for _, k := range auditFilters {
		v := in.Get(k)
		d.Filters = append(d.Filters, auditFilter{k, v})
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", "50")
	if n := in.Get("next"); n != "" {
		q.Set("next", n)
	}
	var out struct {
		Records    []auditRecord `json:"records"`
		Next       string        `json:"next"`
		Incomplete bool          `json:"incomplete"`
		Dropped    int64         `json:"dropped"`
		Stored     bool          `json:"stored"`
	}
	res := h.call(r.Context(), u, http.MethodGet, "/v1/admin/audit?"+q.Encode(), nil, &out)
	if res.status == http.StatusBadRequest {
		d.Stored = true
		h.render(w, r, http.StatusBadRequest, "audit", &page{Title: "Audit", Nav: "audit", User: u, Message: res.message, Data: d})
		return
	}
	if !res.ok() {
		h.refused(w, r, u, "read the audit log", res)
		return
	}
	d.Records, d.Incomplete, d.Dropped, d.Stored = out.Records, out.Incomplete, out.Dropped, out.Stored
	if out.Next != "" {
		next := url.Values{}
		for _, f := range d.Filters {
			if f.Value != "" {
				next.Set(f.Name, f.Value)
			}
		}
		next.Set("next", out.Next)
		d.Next = Prefix + "audit?" + next.Encode()
	}
	slices.SortStableFunc(d.Records, func(a, b auditRecord) int { return b.Time.Compare(a.Time) })
	h.render(w, r, http.StatusOK, "audit", &page{Title: "Audit", Nav: "audit", User: u, Data: d})
}
