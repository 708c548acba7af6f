package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgwarden/pgwarden/pgerr"
)

// StartupParams returns the ParameterStatus set clients are greeted with,
// opening a first connection if none was opened yet.
func (p *Pool) StartupParams(ctx context.Context) (map[string]string, error) {
	p.mu.Lock()
	params := p.paramVals
	p.mu.Unlock()
	if params != nil {
		return params, nil
	}
	b, err := p.Acquire(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	p.Release(b, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paramVals, nil
}

// maxValidSettings bounds CheckSettings' memory of accepted values.
const maxValidSettings = 1024

// CheckSettings asks the warehouse whether it takes a client's startup
// settings, those that differ from its connections': each is set with
// set_config local to a statement of its own, which changes nothing after
// it. A value refused answers with the warehouse's error (22023 "invalid
// value for parameter ..."); a value taken is not asked about again. It
// returns the accepted values as the warehouse spells them ("iso" is
// "ISO, MDY"), for the client's ParameterStatus.
func (p *Pool) CheckSettings(ctx context.Context, want, have map[string]string) (map[string]string, error) {
	canon := map[string]string{}
	var names, sets []string
	p.mu.Lock()
	for _, name := range []string{"DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits"} {
		v, ok := want[name]
		if !ok || strings.EqualFold(v, have[name]) {
			continue
		}
		if c, ok := p.validSettings[name+"="+v]; ok {
			canon[name] = c
			continue
		}
		names = append(names, name)
		sets = append(sets, fmt.Sprintf("pg_catalog.set_config('%s', '%s', true)", name, strings.ReplaceAll(v, "'", "''")))
	}
	p.mu.Unlock()
	if len(sets) == 0 {
		return canon, nil
	}
	b, err := p.Acquire(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	rows, err := b.Query("SELECT "+strings.Join(sets, ", "), p.timeout)
	var pe *pgerr.Error
	if err != nil && !errors.As(err, &pe) {
		p.Release(b, false) // the connection failed, not the settings
		return nil, err
	}
	p.Release(b, true)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != len(names) {
		return nil, fmt.Errorf("settings check returned %d rows", len(rows))
	}
	p.mu.Lock()
	if p.validSettings == nil || len(p.validSettings) >= maxValidSettings {
		p.validSettings = map[string]string{}
	}
	for i, name := range names {
		canon[name] = rows[0][i]
		p.validSettings[name+"="+want[name]] = rows[0][i]
	}
	p.mu.Unlock()
	return canon, nil
}
