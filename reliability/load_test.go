package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// load describes a run of the load generator.
type load struct {
	Keys       int           // logical requests, each with its own key and amount
	Rate       float64       // logical requests started per second
	Deliveries int           // concurrent deliveries of each logical request, to different instances
	Timeout    time.Duration // each attempt's client timeout
	RetryMax   int           // retries of one delivery by go-retryablehttp
	HoldFrac   float64       // share of requests with hold_ms (finishing after a client that gave up)
	DelayFrac  float64       // share with delay_ms (watching the request's context)
	MaxHold    time.Duration // hold_ms drawn from [MaxHold/4, MaxHold]
	MaxDelay   time.Duration // delay_ms drawn from [0, MaxDelay]
	Hold       time.Duration // when set, every request holds this long (slow-handler scenarios)
	Settle     time.Duration // how long the final check of a key may retry before it counts as stuck
}

// keyResult is what the clients saw for one logical request.
type keyResult struct {
	key    string
	amount int64
	query  url.Values    // hold_ms or delay_ms: part of the fingerprint, so every delivery sends the same
	start  time.Time     // when its first delivery was sent
	wait   time.Duration // from start to the first 2xx any client saw
	bodies [][]byte      // every 2xx body seen, deliveries and the final check
	final  []byte        // the final check's 2xx body, nil when stuck
}

// loadResult sums up a load run.
type loadResult struct {
	keys     []*keyResult
	attempts atomic.Int64 // HTTP requests sent (deliveries and their retries)
	status   [6]atomic.Int64
	errors   atomic.Int64  // attempts that got no response (timeouts, refused, reset)
	settle   time.Duration // how long the final check took, until every key answered 2xx
}

var amountBase atomic.Int64

func init() { amountBase.Store(1000) }

// run sends l's logical requests to urls and, once every delivery has
// ended, checks each key once more until it answers 2xx (or l.Settle
// passes). Each delivery of key i starts on instance (i+d) mod n and moves
// to the next instance on every retry.
func (l load) run(ctx context.Context, urls []string, runID string) *loadResult {
	res := &loadResult{}
	base := amountBase.Add(int64(l.Keys)) - int64(l.Keys)
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / l.Rate)
	start := time.Now()
	for i := 0; i < l.Keys; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		kr := &keyResult{key: fmt.Sprintf("rel-%s-%d", runID, i), amount: base + int64(i) + 1, start: time.Now()}
		res.keys = append(res.keys, kr)
		q := url.Values{}
		switch r := rng.Float64(); {
		case l.Hold > 0:
			q.Set("hold_ms", fmt.Sprint(l.Hold.Milliseconds()))
		case r < l.HoldFrac:
			q.Set("hold_ms", fmt.Sprint(l.MaxHold.Milliseconds()/4+rng.Int64N(l.MaxHold.Milliseconds()*3/4+1)))
		case r < l.HoldFrac+l.DelayFrac:
			q.Set("delay_ms", fmt.Sprint(rng.Int64N(l.MaxDelay.Milliseconds()+1)))
		}
		kr.query = q
		var mu sync.Mutex
		for d := 0; d < l.Deliveries; d++ {
			wg.Go(func() {
				body, ok := l.deliver(ctx, res, transport, urls, (i+d)%len(urls), kr, q)
				if ok {
					mu.Lock()
					kr.bodies = append(kr.bodies, body)
					if kr.wait == 0 {
						kr.wait = time.Since(kr.start)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	// The final check: every key must answer 2xx, the same body.
	settleStart := time.Now()
	defer func() { res.settle = time.Since(settleStart) }()
	sem := make(chan struct{}, 16)
	for i, kr := range res.keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, l.Settle)
			defer cancel()
			for n := 0; sctx.Err() == nil; n++ {
				c := l.client(res, transport, urls, i+n, 10*time.Second, 0)
				body, ok := send(sctx, c, urls[0], kr, kr.query)
				if ok {
					if kr.wait == 0 {
						kr.wait = time.Since(kr.start)
					}
					kr.final = body
					kr.bodies = append(kr.bodies, body)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return res
}

// client is a go-retryablehttp client whose attempts go round the
// instances, starting with urls[first mod n].
func (l load) client(res *loadResult, transport http.RoundTripper, urls []string, first int, timeout time.Duration, retryMax int) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.HTTPClient = &http.Client{Transport: transport, Timeout: timeout}
	c.RetryMax = retryMax
	c.RetryWaitMin = 50 * time.Millisecond
	c.RetryWaitMax = time.Second
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		res.attempts.Add(1)
		u, _ := url.Parse(urls[(first+attempt)%len(urls)])
		req.URL.Host, req.Host = u.Host, u.Host
	}
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err != nil {
			res.errors.Add(1)
			return true, nil
		}
		res.status[resp.StatusCode/100].Add(1)
		switch {
		case resp.StatusCode == http.StatusConflict, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
			return true, nil
		}
		return false, nil
	}
	return c
}

// deliver sends one delivery of kr, retried by go-retryablehttp; it
// returns the 2xx body the client got, if any.
func (l load) deliver(ctx context.Context, res *loadResult, transport http.RoundTripper, urls []string, first int, kr *keyResult, q url.Values) ([]byte, bool) {
	c := l.client(res, transport, urls, first, l.Timeout, l.RetryMax)
	return send(ctx, c, urls[0], kr, q)
}

func send(ctx context.Context, c *retryablehttp.Client, base string, kr *keyResult, q url.Values) ([]byte, bool) {
	u := base + "/payments"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	payload, _ := json.Marshal(map[string]any{"amount": kr.amount, "currency": "EUR"})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, u, payload)
	if err != nil {
		return nil, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", kr.key)
	req.Header.Set("X-Api-Key", "reliability")
	resp, err := c.Do(req)
	if err != nil || resp == nil {
		return nil, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode/100 != 2 {
		return nil, false
	}
	return body, true
}

// verdict compares what the clients saw with the instances' ledgers.
type verdict struct {
	Double      int // keys whose payment was created more than once (outside a crash)
	CrashReruns int // keys whose handler ran again after an instance holding them was killed
	Expected    int // keys that ran more than once where the scenario documents it (eviction, no replica acks)
	Lost        int // keys whose clients saw different bodies, or a body the ledger does not hold
	Stuck       int // keys that never answered 2xx
	examples    []string
}

// judge checks res against l. crashed lists the instances killed during
// the run: a key whose handler started on one of them may run again (the
// documented at-least-once case across crashes), counted apart. With
// expectReruns, a key whose payment was created more than once is
// counted as expected (with the different bodies its runs answered), not
// as a double execution or a lost completion.
func judge(res *loadResult, l ledger, expectReruns bool, crashed ...int) verdict {
	var v verdict
	note := func(format string, args ...any) {
		if len(v.examples) < 8 {
			v.examples = append(v.examples, fmt.Sprintf(format, args...))
		}
	}
	for _, kr := range res.keys {
		crash := false
		for _, i := range crashed {
			if l.runsOn[i][kr.amount] > 0 {
				crash = true
			}
		}
		pays := l.pays[kr.amount]
		rerun := false
		switch {
		case len(pays) > 1 && expectReruns:
			v.Expected++
			rerun = true
		case len(pays) > 1 && crash:
			v.CrashReruns++
		case len(pays) > 1:
			v.Double++
			note("double execution: key %s amount %d: %d payments %v, %d handler starts", kr.key, kr.amount, len(pays), pays, l.runs[kr.amount])
		case crash && l.runs[kr.amount] > 1:
			v.CrashReruns++
		}
		if kr.final == nil {
			v.Stuck++
			note("stuck: key %s amount %d never answered 2xx (%d payments)", kr.key, kr.amount, len(pays))
		}
		distinct := map[string]bool{}
		for _, b := range kr.bodies {
			distinct[string(b)] = true
		}
		// Different bodies are a lost completion, unless they are the
		// expected re-runs' own payments; a body the ledger does not hold
		// always is.
		lost := len(distinct) > 1 && !rerun
		for b := range distinct {
			var p struct {
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(b), &p) != nil || !contains(pays, p.ID) {
				lost = true
			}
		}
		if lost {
			v.Lost++
			var bs []string
			for b := range distinct {
				bs = append(bs, string(bytes.TrimSpace([]byte(b))))
			}
			note("lost completion: key %s amount %d: bodies seen %v, ledger payments %v", kr.key, kr.amount, bs, pays)
		}
	}
	return v
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
