package auth

import (
	"context"
	"time"
)

// LearnedStatement is a statement a viewer session ran while its warehouse
// (or tenant) was learning its content, and the policy did not list it.
// The control store keeps them, rather than a file on each proxy, so that
// every replica's sightings land in one place that `pgwarden content` and
// the ticket service read, and survive restarts.
type LearnedStatement struct {
	Warehouse   string    `json:"warehouse"`
	Fingerprint string    `json:"fingerprint"`
	Normalized  string    `json:"normalized"`
	Example     string    `json:"example"`
	Tenant      string    `json:"tenant"`
	APIKey      string    `json:"-"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	// Sightings counts the proxy processes' first sightings (each proxy
	// records a fingerprint once per run), not executions.
	Sightings int64 `json:"sightings"`
}

// RecordLearned adds a sighting of l (the first example is kept).
func (s *Store) RecordLearned(ctx context.Context, l LearnedStatement) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.schema+`.learned_statements
		(warehouse, fingerprint, normalized, example, tenant, api_key, first_seen, last_seen)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		ON CONFLICT (warehouse, fingerprint) DO UPDATE
		SET last_seen = GREATEST(learned_statements.last_seen, EXCLUDED.last_seen),
		    sightings = learned_statements.sightings + 1`,
		l.Warehouse, l.Fingerprint, l.Normalized, l.Example, l.Tenant, l.APIKey, l.LastSeen)
	return s.fail("record learned statement", err)
}

// LearnedStatements lists what was learned on warehouse ("" for every
// warehouse), oldest first. apiKey, when not "", keeps only statements
// first seen from sessions minted through that API key.
func (s *Store) LearnedStatements(ctx context.Context, warehouse, apiKey string) ([]LearnedStatement, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT warehouse, fingerprint, normalized, example, tenant, api_key, first_seen, last_seen, sightings
		FROM `+s.schema+`.learned_statements
		WHERE ($1 = '' OR warehouse = $1) AND ($2 = '' OR api_key = $2)
		ORDER BY first_seen, warehouse, fingerprint`, warehouse, apiKey)
	if err != nil {
		return nil, s.fail("list learned statements", err)
	}
	defer rows.Close()
	var out []LearnedStatement
	for rows.Next() {
		var l LearnedStatement
		if err := rows.Scan(&l.Warehouse, &l.Fingerprint, &l.Normalized, &l.Example, &l.Tenant, &l.APIKey, &l.FirstSeen, &l.LastSeen, &l.Sightings); err != nil {
			return nil, s.fail("list learned statements", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list learned statements", err)
	}
	return out, nil
}

// LearnedStatements lists what was learned on warehouse, as an API key
// (apiKey) or an operator ("") may see it.
func (s *Service) LearnedStatements(ctx context.Context, warehouse, apiKey string) ([]LearnedStatement, error) {
	return s.store.LearnedStatements(ctx, warehouse, apiKey)
}
