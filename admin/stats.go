package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/opstats"
)

// KindStats asks a replica for its operational statistics: StatsArgs in,
// an opstats.Snapshot out.
const KindStats = "stats"

// StatsArgs is the window of statistics asked for.
type StatsArgs struct {
	Window time.Duration `json:"window"`
}

// defaultStatsWindow is the window of GET /v1/admin/stats without ?window=.
const defaultStatsWindow = 15 * time.Minute

// stats answers every replica's statistics merged (opstats.Merge), with
// which replicas answered. Owners and Administrators only: the statistics
// name every tenant and show their activity, which Creators and Designers,
// who test policies, have no need to see.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request, c *Caller) {
	window := defaultStatsWindow
	for k, v := range r.URL.Query() {
		if k != "window" {
			auth.WriteError(w, http.StatusBadRequest, "invalid_request", "unknown parameter "+k+" (want window)")
			return
		}
		d, err := time.ParseDuration(v[0])
		if err != nil || d <= 0 {
			auth.WriteError(w, http.StatusBadRequest, "invalid_request", "window: a positive duration such as 15m or 1h")
			return
		}
		window = d
	}
	ans, err := h.store.Ask(r.Context(), auth.FleetQuestion{Kind: KindStats, Args: StatsArgs{Window: window}, Wait: h.cfg.FleetWait})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var snaps []opstats.Snapshot
	replicas := []ReplicaStatus{}
	incomplete := ans.Incomplete
	for _, a := range ans.Replicas {
		st := ReplicaStatus{ID: a.Replica, Name: a.Name, Answered: a.Answered, Error: a.Error}
		if a.Answered && a.Error == "" {
			var s opstats.Snapshot
			if err := json.Unmarshal(a.Body, &s); err != nil {
				st.Error = "unreadable answer"
			} else {
				snaps = append(snaps, s)
			}
		}
		if st.Error != "" {
			st.Answered, incomplete = false, true
		}
		replicas = append(replicas, st)
	}
	merged := opstats.Snapshot{Now: h.cfg.Now().UTC(), WindowSeconds: window.Seconds(), Tenants: []opstats.Tenant{}, Pools: []opstats.Pool{}}
	if len(snaps) > 0 {
		merged = opstats.Merge(snaps...)
	}
	auth.WriteJSON(w, http.StatusOK, StatsResponse{Snapshot: merged, Replicas: replicas, Incomplete: incomplete})
}

// StatsResponse is GET /v1/admin/stats's answer.
type StatsResponse struct {
	opstats.Snapshot
	Replicas   []ReplicaStatus `json:"replicas"`
	Incomplete bool            `json:"incomplete"`
}
