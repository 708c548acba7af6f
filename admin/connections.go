package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/auth"
)

// Requests the admin API sends to every replica (auth.Store.Ask); cmd
// answers them on each proxy replica.
const (
	// KindConnections answers []Connection (the replica's own, ID being the
	// connection's number there and Replica empty).
	KindConnections = "connections"
	// KindCancel takes CancelArgs and answers CancelResult.
	KindCancel = "cancel"
)

// CancelArgs asks a replica to cancel the statement of its connection Conn.
type CancelArgs struct {
	Conn uint64 `json:"conn"`
	// SpareOwners: the caller is not an Owner, so an Owner's connection
	// (by session role, actor role, or one of Owners) is refused.
	SpareOwners bool     `json:"spare_owners,omitempty"`
	Owners      []string `json:"owners,omitempty"`
}

// Results of a KindCancel request.
const (
	CancelDone      = "cancelled"
	CancelNotFound  = "not_found"
	CancelForbidden = "forbidden"
)

// CancelResult is a replica's answer to KindCancel.
type CancelResult struct {
	Result string `json:"result"`
}

// OwnerSession reports whether a session is an Owner's, as CancelArgs and
// the revocations define it.
func OwnerSession(s *auth.Session, owners []string) bool {
	if s.Role == auth.RoleOwner || s.Actor != nil && s.Actor.Role == auth.RoleOwner {
		return true
	}
	return s.Subject != "" && slices.Contains(owners, s.Subject) || s.Actor != nil && slices.Contains(owners, s.Actor.Subject)
}

// Connection is one client connection on one replica, as the API shows it.
type Connection struct {
	// ID names the replica and the connection ("<replica>-<n>"); cancel
	// takes it.
	ID                 string     `json:"id"`
	Replica            string     `json:"replica"`
	Session            string     `json:"session"`
	Kind               string     `json:"kind"`
	Tenant             string     `json:"tenant"`
	ExternalID         string     `json:"external_id"`
	Subject            string     `json:"subject"`
	Role               string     `json:"role"`
	ActorSubject       string     `json:"actor_subject,omitempty"`
	ActorRole          string     `json:"actor_role,omitempty"`
	ClientAddr         string     `json:"client_addr"`
	ApplicationName    string     `json:"application_name"`
	Warehouse          string     `json:"warehouse"`
	ConnectedAt        time.Time  `json:"connected_at"`
	State              string     `json:"state"`
	Statement          string     `json:"statement"`
	StatementStartedAt *time.Time `json:"statement_started_at"`
}

// ReplicaStatus says whether a replica answered a fleet request.
type ReplicaStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Answered bool   `json:"answered"`
	Error    string `json:"error,omitempty"`
}

// Filter selects sessions and connections; empty fields match anything.
type Filter struct {
	Tenant, ExternalID, Subject, Session, ClientAddr, Warehouse string
}

// filterKeys are the query parameters of Filter.
var filterKeys = []string{"tenant", "external_id", "subject", "session", "client_addr", "warehouse"}

// parseFilter reads f from q; any other parameter is an error (a typo must
// not silently list everything).
func parseFilter(q url.Values, extra ...string) (Filter, error) {
	for k := range q {
		if !slices.Contains(filterKeys, k) && !slices.Contains(extra, k) {
			return Filter{}, fmt.Errorf("unknown filter %q (want one of %s)", k, strings.Join(append(slices.Clone(filterKeys), extra...), ", "))
		}
	}
	return Filter{Tenant: q.Get("tenant"), ExternalID: q.Get("external_id"), Subject: q.Get("subject"), Session: q.Get("session"),
		ClientAddr: q.Get("client_addr"), Warehouse: q.Get("warehouse")}, nil
}

// clientAddrMatches: want is an address with or without its port.
func clientAddrMatches(addr, want string) bool {
	if want == "" || addr == want {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host == want
}

func (f Filter) connection(c *Connection) bool {
	return (f.Tenant == "" || c.Tenant == f.Tenant) && (f.ExternalID == "" || c.ExternalID == f.ExternalID) &&
		(f.Subject == "" || c.Subject == f.Subject || c.ActorSubject == f.Subject) && (f.Session == "" || c.Session == f.Session) &&
		clientAddrMatches(c.ClientAddr, f.ClientAddr) && (f.Warehouse == "" || c.Warehouse == f.Warehouse)
}

// needsConnections: the filter names what only connections know.
func (f Filter) needsConnections() bool { return f.ClientAddr != "" || f.Warehouse != "" }

// Connections lists the connections f selects on every live replica, with
// which replicas answered and whether one did not (for the console).
func (h *Handler) Connections(ctx context.Context, f Filter) ([]Connection, []ReplicaStatus, bool, error) {
	conns, replicas, incomplete, err := h.connections(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	out := []Connection{}
	for i := range conns {
		if f.connection(&conns[i]) {
			out = append(out, conns[i])
		}
	}
	return out, replicas, incomplete, nil
}

// connections asks every live replica for its connections.
func (h *Handler) connections(ctx context.Context) ([]Connection, []ReplicaStatus, bool, error) {
	ans, err := h.store.Ask(ctx, auth.FleetQuestion{Kind: KindConnections, Wait: h.cfg.FleetWait})
	if err != nil {
		return nil, nil, false, err
	}
	var (
		out        []Connection
		replicas   = []ReplicaStatus{}
		incomplete = ans.Incomplete
	)
	for _, r := range ans.Replicas {
		st := ReplicaStatus{ID: r.Replica, Name: r.Name, Answered: r.Answered, Error: r.Error}
		if r.Answered && r.Error == "" {
			var cs []struct {
				Connection
				N uint64 `json:"id"`
			}
			if err := json.Unmarshal(r.Body, &cs); err != nil {
				st.Error = "unreadable answer"
			}
			for _, c := range cs {
				c.Connection.ID, c.Connection.Replica = fmt.Sprintf("%s-%d", r.Replica, c.N), r.Replica
				out = append(out, c.Connection)
			}
		}
		if st.Error != "" {
			st.Answered, incomplete = false, true
		}
		replicas = append(replicas, st)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ConnectedAt.Before(out[j].ConnectedAt) })
	return out, replicas, incomplete, nil
}

func (h *Handler) listConnections(w http.ResponseWriter, r *http.Request, c *Caller) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	out, replicas, incomplete, err := h.Connections(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	auth.WriteJSON(w, http.StatusOK, map[string]any{"connections": out, "replicas": replicas, "incomplete": incomplete})
}

// parseConnID splits "<replica>-<n>".
func parseConnID(id string) (string, uint64, bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[:i], n, err == nil
}

func (h *Handler) cancelConnection(w http.ResponseWriter, r *http.Request, c *Caller) {
	id := r.PathValue("id")
	replica, n, ok := parseConnID(id)
	if !ok {
		auth.WriteError(w, http.StatusNotFound, "not_found", "no such connection")
		return
	}
	args := CancelArgs{Conn: n}
	if c.Role != auth.RoleOwner {
		args.SpareOwners, args.Owners = true, h.cfg.Owners
	}
	ans, err := h.store.Ask(r.Context(), auth.FleetQuestion{Kind: KindCancel, Args: args, To: replica, Wait: h.cfg.FleetWait})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(ans.Replicas) == 0 {
		auth.WriteError(w, http.StatusNotFound, "not_found", "no such connection (its replica is gone)")
		return
	}
	a := ans.Replicas[0]
	if !a.Answered {
		auth.WriteError(w, http.StatusServiceUnavailable, "replica_unavailable", "the connection's replica did not answer in time: retry")
		return
	}
	var res CancelResult
	if a.Error != "" || json.Unmarshal(a.Body, &res) != nil {
		h.fail(w, r, errors.New("cancel on replica "+replica+": "+a.Error))
		return
	}
	switch res.Result {
	case CancelNotFound:
		auth.WriteError(w, http.StatusNotFound, "not_found", "no such connection (it closed)")
	case CancelForbidden:
		forbidden(w, c.Role, "cancel an Owner's statement")
	case CancelDone:
		h.log.Info("admin cancelled a statement", zap.String("connection", id), zap.String("by", c.Subject()), zap.String("role", string(c.Role)))
		auth.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "cancelled": true})
	default:
		h.fail(w, r, fmt.Errorf("cancel on replica %s: unexpected answer %q", replica, res.Result))
	}
}
