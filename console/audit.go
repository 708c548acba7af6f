package console

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/pgwarden/pgwarden/audit"
)

// auditFilters are the audit reader's filters the page offers, in order.
var auditFilters = []string{"tenant", "external_id", "subject", "session", "kind", "event", "outcome", "sqlstate", "warehouse", "since", "until"}

type auditFilter struct{ Name, Value string }

type auditData struct {
	Filters    []auditFilter
	Records    []audit.Record
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
		Records    []audit.Record `json:"records"`
		Next       string         `json:"next"`
		Incomplete bool           `json:"incomplete"`
		Dropped    int64          `json:"dropped"`
		Stored     bool           `json:"stored"`
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
	slices.SortStableFunc(d.Records, func(a, b audit.Record) int { return b.Time.Compare(a.Time) })
	h.render(w, r, http.StatusOK, "audit", &page{Title: "Audit", Nav: "audit", User: u, Data: d})
}
