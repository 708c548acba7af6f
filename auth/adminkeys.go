package auth

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Admin API keys authenticate scripts on the admin API with a role of their
// own (owner or administrator). Unlike host-application keys, which live in
// the config file, they are created, rotated and revoked at run time, so
// they live in the store; only their SHA-256 is kept.

var (
	ErrAdminKeyNotFound = errors.New("admin api key not found")
	ErrAdminKeyExists   = errors.New("admin api key already exists")
)

// AdminKey is an admin API key's row (never the key itself).
type AdminKey struct {
	Name      string    `json:"name"`
	Role      UserRole  `json:"role"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateAdminKey records a new key by its hash.
func (s *Store) CreateAdminKey(ctx context.Context, k AdminKey, sha256Hex string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.schema+`.admin_keys (name, sha256, role, created_by, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.Name, sha256Hex, string(k.Role), k.CreatedBy, k.CreatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return ErrAdminKeyExists
	}
	return s.fail("create admin key", err)
}

// AdminKeyByName returns the live key called name.
func (s *Store) AdminKeyByName(ctx context.Context, name string) (*AdminKey, error) {
	return s.adminKey(ctx, `name = $1`, name)
}

// AdminKeyByHash returns the live key whose SHA-256 is sha256Hex.
func (s *Store) AdminKeyByHash(ctx context.Context, sha256Hex string) (*AdminKey, error) {
	return s.adminKey(ctx, `sha256 = $1`, sha256Hex)
}

func (s *Store) adminKey(ctx context.Context, where string, arg string) (*AdminKey, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var k AdminKey
	var role string
	err := s.pool.QueryRow(ctx, `SELECT name, role, created_by, created_at FROM `+s.schema+`.admin_keys WHERE revoked_at IS NULL AND `+where, arg).
		Scan(&k.Name, &role, &k.CreatedBy, &k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrAdminKeyNotFound
	}
	if err != nil {
		return nil, s.fail("admin key", err)
	}
	k.Role = UserRole(role)
	return &k, nil
}

// RotateAdminKey replaces the hash of live key name: the old key stops
// working at once.
func (s *Store) RotateAdminKey(ctx context.Context, name, sha256Hex string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.schema+`.admin_keys SET sha256 = $2 WHERE name = $1 AND revoked_at IS NULL`, name, sha256Hex)
	if err != nil {
		return s.fail("rotate admin key", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrAdminKeyNotFound
	}
	return nil
}

// RevokeAdminKey ends live key name. The name stays taken.
func (s *Store) RevokeAdminKey(ctx context.Context, name string, now time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.schema+`.admin_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL`, name, now)
	if err != nil {
		return s.fail("revoke admin key", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrAdminKeyNotFound
	}
	return nil
}

// AdminKeys lists the live keys by name (never their hashes).
func (s *Store) AdminKeys(ctx context.Context) ([]AdminKey, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT name, role, created_by, created_at FROM `+s.schema+`.admin_keys WHERE revoked_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, s.fail("admin keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AdminKey, error) {
		var k AdminKey
		var role string
		err := r.Scan(&k.Name, &role, &k.CreatedBy, &k.CreatedAt)
		k.Role = UserRole(role)
		return k, err
	})
	if err != nil {
		return nil, s.fail("admin keys", err)
	}
	return out, nil
}
