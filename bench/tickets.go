package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ticketRound is one round of the ticket-service benchmark: workers mint a
// web-ticket (POST /v1/tickets with the API key) and exchange it for a session
// (POST /v1/sessions), back to back, for the round's duration.
type ticketRound struct {
	Pairs      int
	Errors     int
	Elapsed    time.Duration
	PairsPerS  float64
	MintMs     latencyStats
	ExchangeMs latencyStats
	FirstErr   string
}

type ticketClient struct {
	base   string
	apiKey string
	hc     *http.Client
}

func newTicketClient(httpPort int, apiKey string, workers int) *ticketClient {
	tr := &http.Transport{MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, IdleConnTimeout: time.Minute}
	return &ticketClient{base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), apiKey: apiKey,
		hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// ticketRequest is the host application's request for a web-ticket.
type ticketRequest struct {
	Tenant          string            `json:"tenant"`
	ExternalID      string            `json:"external_id"`
	ConnectionRoles map[string]string `json:"connection_roles,omitempty"`
}

func (c *ticketClient) post(ctx context.Context, path string, body any, auth bool) (map[string]any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, tail(string(data), 200))
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("POST %s: response is not a JSON object: %w", path, err)
	}
	return m, nil
}

func stringField(m map[string]any, names ...string) string {
	for _, n := range names {
		if s, ok := m[n].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// mintAndExchange does one ticket → session pair and times both halves.
func (c *ticketClient) mintAndExchange(ctx context.Context, user int) (mint, exchange time.Duration, err error) {
	t0 := time.Now()
	ticket, err := c.mint(ctx, ticketRequest{Tenant: benchTenant, ExternalID: fmt.Sprintf("user-%d", user),
		ConnectionRoles: map[string]string{whBench: "querier"}})
	if err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	if _, _, err := c.exchange(ctx, ticket); err != nil {
		return 0, 0, err
	}
	return t1.Sub(t0), time.Since(t1), nil
}

// mint asks for a web-ticket as the host application's backend does.
func (c *ticketClient) mint(ctx context.Context, req ticketRequest) (string, error) {
	m, err := c.post(ctx, "/v1/tickets", req, true)
	if err != nil {
		return "", err
	}
	ticket := stringField(m, "ticket")
	if ticket == "" {
		return "", fmt.Errorf("POST /v1/tickets: no \"ticket\" in the response")
	}
	return ticket, nil
}

// exchange redeems a ticket for a session token and returns it with the
// session's id.
func (c *ticketClient) exchange(ctx context.Context, ticket string) (token, sessionID string, err error) {
	s, err := c.post(ctx, "/v1/sessions", map[string]string{"ticket": ticket}, false)
	if err != nil {
		return "", "", err
	}
	if token = stringField(s, "token", "session_token", "password"); token == "" {
		return "", "", fmt.Errorf("POST /v1/sessions: no token in the response")
	}
	return token, stringField(s, "session_id", "id"), nil
}

// runTicketRound runs workers concurrently for d.
func runTicketRound(ctx context.Context, c *ticketClient, workers int, d time.Duration) ticketRound {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var r ticketRound
	var mints, exchanges []float64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var myM, myE []float64
			var errs int
			var firstErr string
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				m, e, err := c.mintAndExchange(ctx, w*1_000_000+i)
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					if errs > 20 && len(myM) == 0 {
						break // the service is not answering as expected; don't spin
					}
					continue
				}
				myM = append(myM, float64(m)/float64(time.Millisecond))
				myE = append(myE, float64(e)/float64(time.Millisecond))
			}
			mu.Lock()
			mints = append(mints, myM...)
			exchanges = append(exchanges, myE...)
			r.Errors += errs
			if r.FirstErr == "" {
				r.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	r.Pairs = len(mints)
	r.PairsPerS = float64(r.Pairs) / r.Elapsed.Seconds()
	r.MintMs = summarizeLatencies(mints)
	r.ExchangeMs = summarizeLatencies(exchanges)
	return r
}
