package idemgrpc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemgrpc"
	"github.com/idemkit/idemkit/adapters/idemgrpc/test/testpb"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// newStoreFunc returns a fresh, isolated store for one subtest.
type newStoreFunc func(t *testing.T) core.Store

func TestInterceptorMemstore(t *testing.T) {
	testInterceptor(t, func(*testing.T) core.Store { return memstore.New() })
}

func TestInterceptorRedis(t *testing.T) {
	url := svctest.RedisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.ParseURL(%s): %v", svctest.EnvRedisURL, err)
	}
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s does not answer: %v", svctest.EnvRedisURL, err)
	}
	var n atomic.Int64
	run := time.Now().UnixNano()
	testInterceptor(t, func(t *testing.T) core.Store {
		return redisstore.New(client, redisstore.WithPrefix(fmt.Sprintf("idemgrpc-test:%d:%d:", run, n.Add(1))))
	})
}

// payments is the test service: it counts its executions, and fails as
// the request (or the test) asks.
type payments struct {
	testpb.UnimplementedPaymentsServer
	executions atomic.Int64
	claimed    atomic.Int64 // executions under a claim (core.HeldClaim)
	failNext   atomic.Int32 // a code the next Charge fails with, once
}

func (p *payments) Charge(ctx context.Context, req *testpb.ChargeRequest) (*testpb.ChargeReply, error) {
	n := p.executions.Add(1)
	if _, token, ok := core.HeldClaim(ctx); ok && token != "" {
		p.claimed.Add(1)
	}
	if req.DelayMs > 0 {
		time.Sleep(time.Duration(req.DelayMs) * time.Millisecond)
	}
	if req.Applied {
		core.MarkApplied(ctx)
	}
	if req.NotApplied {
		core.MarkNotApplied(ctx)
	}
	if c := p.failNext.Swap(0); c != 0 {
		return nil, status.Errorf(codes.Code(c), "charge %d failed", n)
	}
	if req.Fail != 0 {
		st := status.Newf(codes.Code(req.Fail), "charge %d failed", n)
		if codes.Code(req.Fail) == codes.InvalidArgument {
			st, _ = st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "amount", Description: "too much"},
			}})
		}
		return nil, st.Err()
	}
	return &testpb.ChargeReply{Id: fmt.Sprintf("ch_%d", n), Amount: req.Amount, Labels: req.Labels, Execution: n}, nil
}

func (p *payments) Refund(ctx context.Context, req *testpb.ChargeRequest) (*testpb.RefundReply, error) {
	n := p.executions.Add(1)
	return &testpb.RefundReply{Id: fmt.Sprintf("re_%d", n)}, nil
}

// serve starts a gRPC server with the interceptor on a loopback TCP port
// and returns a client connected to it.
func serve(t *testing.T, engine *core.Engine, p *payments, opts ...idemgrpc.Option) testpb.PaymentsClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(idemgrpc.UnaryServerInterceptor(engine, opts...)))
	testpb.RegisterPaymentsServer(srv, p)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return testpb.NewPaymentsClient(conn)
}

// scopeByAPIKey scopes keys by the x-api-key metadata.
func scopeByAPIKey(ctx context.Context, _ string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-api-key"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// result is one call's outcome.
type result struct {
	reply    *testpb.ChargeReply
	replayed bool
	err      error
}

// charge calls Charge with the metadata pairs md (key, value, …).
func charge(c testpb.PaymentsClient, req *testpb.ChargeRequest, md ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, md...)
	var header metadata.MD
	reply, err := c.Charge(ctx, req, grpc.Header(&header))
	return result{reply: reply, replayed: strings.Join(header.Get(idemgrpc.ReplayedMetadata), ",") == "true", err: err}
}

// newKey returns a key no other test uses.
func newKey(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano())
}

// wire returns m in deterministic wire format.
func wire(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("proto.Marshal: %v", err)
	}
	return b
}

func testInterceptor(t *testing.T, newStore newStoreFunc) {
	setup := func(t *testing.T, opts ...idemgrpc.Option) (testpb.PaymentsClient, *payments, core.Store) {
		t.Helper()
		store := newStore(t)
		p := &payments{}
		opts = append([]idemgrpc.Option{idemgrpc.WithScope(scopeByAPIKey)}, opts...)
		return serve(t, core.New(store), p, opts...), p, store
	}
	req := func() *testpb.ChargeRequest {
		return &testpb.ChargeRequest{Account: "acct_1", Amount: 1200, Labels: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}}
	}

	t.Run("FirstCallRunsRetryReplays", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		first := charge(c, req(), idemgrpc.KeyMetadata, key)
		if first.err != nil || first.replayed {
			t.Fatalf("first Charge: err %v, replayed %v; want the handler's reply, not replayed", first.err, first.replayed)
		}
		for i := range 3 {
			again := charge(c, req(), idemgrpc.KeyMetadata, key)
			if again.err != nil || !again.replayed {
				t.Fatalf("retry %d: err %v, replayed %v; want the stored reply with %s: true", i, again.err, again.replayed, idemgrpc.ReplayedMetadata)
			}
			if got, want := wire(t, again.reply), wire(t, first.reply); string(got) != string(want) {
				t.Errorf("retry %d: reply %v; want the first reply %v byte for byte", i, again.reply, first.reply)
			}
		}
		if got := p.executions.Load(); got != 1 {
			t.Errorf("executions = %d; want 1: a retry must not run the handler", got)
		}
		if got := p.claimed.Load(); got != 1 {
			t.Errorf("executions under a claim = %d; want 1: the handler's context carries the claim's fencing token (core.HeldClaim)", got)
		}
	})

	t.Run("QuotedAndBareKeyAreOne", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		first := charge(c, req(), idemgrpc.KeyMetadata, core.FormatKey(key))
		again := charge(c, req(), idemgrpc.KeyMetadata, key)
		if first.err != nil || again.err != nil || !again.replayed {
			t.Fatalf("quoted then bare: %v, %v (replayed %v); want one key, replayed", first.err, again.err, again.replayed)
		}
		if got := p.executions.Load(); got != 1 {
			t.Errorf("executions = %d; want 1", got)
		}
	})

	t.Run("ConcurrentDuplicates", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		r := req()
		r.DelayMs = 300
		const n = 32
		results := make(chan result, n)
		var start, wg sync.WaitGroup
		start.Add(1)
		for range n {
			wg.Go(func() {
				start.Wait()
				results <- charge(c, r, idemgrpc.KeyMetadata, key)
			})
		}
		start.Done()
		wg.Wait()
		close(results)
		var ran, replayed, aborted int
		for res := range results {
			switch {
			case res.err == nil && !res.replayed:
				ran++
			case res.err == nil:
				replayed++
			case status.Code(res.err) == codes.Aborted:
				aborted++
				if d := retryDelay(res.err); d <= 0 {
					t.Errorf("Aborted without a google.rpc.RetryInfo delay: %v", res.err)
				}
			default:
				t.Errorf("duplicate: %v; want the reply, a replay or Aborted", res.err)
			}
		}
		if ran != 1 || p.executions.Load() != 1 {
			t.Errorf("%d calls got a fresh reply, %d executions; want exactly one of %d concurrent duplicates to run", ran, p.executions.Load(), n)
		}
		t.Logf("%d concurrent duplicates: %d ran, %d replayed, %d Aborted", n, ran, replayed, aborted)
		if after := charge(c, r, idemgrpc.KeyMetadata, key); after.err != nil || !after.replayed {
			t.Errorf("a retry after the duplicates: %v (replayed %v); want the stored reply", after.err, after.replayed)
		}
	})

	t.Run("WaitForInFlight", func(t *testing.T) {
		t.Parallel()
		p := &payments{}
		c := serve(t, core.New(newStore(t), core.WithWaitForInFlight(5*time.Second)), p)
		key := newKey(t)
		r := req()
		r.DelayMs = 200
		const n = 8
		results := make(chan result, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { results <- charge(c, r, idemgrpc.KeyMetadata, key) })
		}
		wg.Wait()
		close(results)
		var ran, replayed int
		for res := range results {
			switch {
			case res.err != nil:
				t.Errorf("duplicate with waiting on: %v; want the reply or its replay", res.err)
			case res.replayed:
				replayed++
			default:
				ran++
			}
		}
		if ran != 1 || replayed != n-1 || p.executions.Load() != 1 {
			t.Errorf("%d ran, %d replayed, %d executions; want 1, %d, 1", ran, replayed, p.executions.Load(), n-1)
		}
	})

	t.Run("Mismatch", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		if res := charge(c, req(), idemgrpc.KeyMetadata, key); res.err != nil {
			t.Fatalf("first Charge: %v", res.err)
		}
		other := req()
		other.Amount++
		if res := charge(c, other, idemgrpc.KeyMetadata, key); status.Code(res.err) != codes.FailedPrecondition {
			t.Errorf("the key with another request: %v; want FailedPrecondition", res.err)
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), idemgrpc.KeyMetadata, key)
		if _, err := c.Refund(ctx, req()); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("the key on another method: %v; want FailedPrecondition (one key space per scope)", err)
		}
		if got := p.executions.Load(); got != 1 {
			t.Errorf("executions = %d; want 1", got)
		}
	})

	t.Run("KeyRefusals", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		for _, tc := range []struct {
			name string
			md   []string
			want string
		}{
			{"Missing", nil, "missing idempotency-key"},
			{"Empty", []string{idemgrpc.KeyMetadata, ""}, "empty key"},
			{"Space", []string{idemgrpc.KeyMetadata, "a b"}, "quote the key"},
			{"Unterminated", []string{idemgrpc.KeyMetadata, `"abc`}, "unterminated"},
			{"Parameters", []string{idemgrpc.KeyMetadata, `"abc";x=1`}, "parameters"},
			{"TwoValues", []string{idemgrpc.KeyMetadata, "a", idemgrpc.KeyMetadata, "b"}, "more than one"},
			{"TooLong", []string{idemgrpc.KeyMetadata, strings.Repeat("k", core.DefaultMaxKeyLength+1)}, "longer than"},
		} {
			res := charge(c, req(), tc.md...)
			if status.Code(res.err) != codes.InvalidArgument || !strings.Contains(status.Convert(res.err).Message(), tc.want) {
				t.Errorf("%s: %v; want InvalidArgument mentioning %q", tc.name, res.err, tc.want)
			}
		}
		if got := p.executions.Load(); got != 0 {
			t.Errorf("executions = %d; want 0: a refused key runs nothing", got)
		}
	})

	t.Run("KeyOptional", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t, idemgrpc.WithKeyRequired(false))
		for range 2 {
			if res := charge(c, req()); res.err != nil || res.replayed {
				t.Fatalf("keyless Charge: %v (replayed %v); want it to pass through", res.err, res.replayed)
			}
		}
		if got := p.executions.Load(); got != 2 {
			t.Errorf("executions = %d; want 2: keyless calls are not guarded", got)
		}
	})

	t.Run("OnlyNamedMethods", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t, idemgrpc.WithMethods(testpb.Payments_Charge_FullMethodName))
		if _, err := c.Refund(context.Background(), req()); err != nil {
			t.Errorf("Refund without a key, not guarded: %v; want it to run", err)
		}
		if res := charge(c, req()); status.Code(res.err) != codes.InvalidArgument {
			t.Errorf("Charge without a key, guarded: %v; want InvalidArgument", res.err)
		}
		if got := p.executions.Load(); got != 1 {
			t.Errorf("executions = %d; want 1", got)
		}
	})

	t.Run("StoreDown", func(t *testing.T) {
		t.Parallel()
		store := &flakyStore{Store: newStore(t)}
		store.down.Store(true)
		p := &payments{}
		c := serve(t, core.New(store), p)
		key := newKey(t)
		if res := charge(c, req(), idemgrpc.KeyMetadata, key); status.Code(res.err) != codes.Unavailable {
			t.Errorf("store down: %v; want Unavailable", res.err)
		}
		if got := p.executions.Load(); got != 0 {
			t.Errorf("executions = %d; want 0: fail closed", got)
		}
		store.down.Store(false)
		if res := charge(c, req(), idemgrpc.KeyMetadata, key); res.err != nil || res.replayed {
			t.Errorf("store back: %v (replayed %v); want the handler to run", res.err, res.replayed)
		}
	})

	t.Run("HandlerErrorReleased", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		for _, code := range []codes.Code{codes.Unavailable, codes.Internal, codes.Unknown, codes.Aborted, codes.Unimplemented, codes.DeadlineExceeded} {
			p.failNext.Store(int32(code))
			if res := charge(c, req(), idemgrpc.KeyMetadata, key); status.Code(res.err) != code || res.replayed {
				t.Fatalf("failing Charge: %v (replayed %v); want the handler's %v as it is", res.err, res.replayed, code)
			}
		}
		ok := charge(c, req(), idemgrpc.KeyMetadata, key)
		if ok.err != nil || ok.replayed {
			t.Fatalf("retry after released failures: %v (replayed %v); want the handler to run", ok.err, ok.replayed)
		}
		if again := charge(c, req(), idemgrpc.KeyMetadata, key); again.err != nil || !again.replayed || again.reply.Execution != ok.reply.Execution {
			t.Errorf("retry after success: %v %v; want the stored reply of execution %d", again.err, again.reply, ok.reply.Execution)
		}
		if got := p.executions.Load(); got != 7 {
			t.Errorf("executions = %d; want 7 (6 released failures, 1 success)", got)
		}
	})

	t.Run("StoredErrorReplayed", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		for _, tc := range []struct {
			name    string
			code    codes.Code
			applied bool
		}{
			{"NotFound", codes.NotFound, false},
			{"InvalidArgumentWithDetails", codes.InvalidArgument, false},
			{"PermissionDenied", codes.PermissionDenied, false},
			{"InternalAfterMarkApplied", codes.Internal, true},
		} {
			key := newKey(t)
			r := req()
			r.Fail, r.Applied = int32(tc.code), tc.applied
			before := p.executions.Load()
			first := charge(c, r, idemgrpc.KeyMetadata, key)
			again := charge(c, r, idemgrpc.KeyMetadata, key)
			if status.Code(first.err) != tc.code || first.replayed {
				t.Errorf("%s: first call %v; want the handler's %v", tc.name, first.err, tc.code)
			}
			if !again.replayed || !proto.Equal(status.Convert(again.err).Proto(), status.Convert(first.err).Proto()) {
				t.Errorf("%s: retry %v (replayed %v); want the first status %v, details included, replayed", tc.name, again.err, again.replayed, first.err)
			}
			if got := p.executions.Load() - before; got != 1 {
				t.Errorf("%s: executions = %d; want 1: a stored failure is not run again", tc.name, got)
			}
		}
	})

	t.Run("EngineLimits", func(t *testing.T) {
		t.Parallel()
		p := &payments{}
		c := serve(t, core.New(newStore(t), core.WithMaxBodyBytes(64), core.WithMaxResponseBytes(16)), p)
		big := req()
		big.Account = strings.Repeat("a", 65)
		if res := charge(c, big, idemgrpc.KeyMetadata, newKey(t)); status.Code(res.err) != codes.InvalidArgument {
			t.Errorf("a request over the body limit: %v; want InvalidArgument", res.err)
		}
		if got := p.executions.Load(); got != 0 {
			t.Errorf("executions = %d; want 0", got)
		}
		// The reply is over the response limit: delivered, kept without
		// its body, never run again.
		key := newKey(t)
		if res := charge(c, req(), idemgrpc.KeyMetadata, key); res.err != nil || res.replayed {
			t.Fatalf("first Charge: %v (replayed %v); want the reply", res.err, res.replayed)
		}
		if res := charge(c, req(), idemgrpc.KeyMetadata, key); status.Code(res.err) != codes.DataLoss {
			t.Errorf("retry of a reply too large to keep: %v; want DataLoss", res.err)
		}
		if got := p.executions.Load(); got != 1 {
			t.Errorf("executions = %d; want 1", got)
		}
	})

	t.Run("MarkNotAppliedReleases", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		for _, code := range []codes.Code{codes.NotFound, codes.OK} {
			key := newKey(t)
			r := req()
			r.Fail, r.NotApplied = int32(code), true
			for i := range 2 {
				if res := charge(c, r, idemgrpc.KeyMetadata, key); status.Code(res.err) != code || res.replayed {
					t.Errorf("%v declared not applied, call %d: %v (replayed %v); want the handler to run again", code, i, res.err, res.replayed)
				}
			}
		}
		if got := p.executions.Load(); got != 4 {
			t.Errorf("executions = %d; want 4: core.MarkNotApplied releases a result the policy would store", got)
		}
	})

	t.Run("ScopesIsolated", func(t *testing.T) {
		t.Parallel()
		c, p, _ := setup(t)
		key := newKey(t)
		a := charge(c, req(), idemgrpc.KeyMetadata, key, "x-api-key", "client-a")
		b := charge(c, req(), idemgrpc.KeyMetadata, key, "x-api-key", "client-b")
		if a.err != nil || b.err != nil || a.replayed || b.replayed {
			t.Fatalf("one key, two scopes: %v, %v (replayed %v, %v); want both to run", a.err, b.err, a.replayed, b.replayed)
		}
		a2 := charge(c, req(), idemgrpc.KeyMetadata, key, "x-api-key", "client-a")
		if a2.err != nil || !a2.replayed || a2.reply.Execution != a.reply.Execution {
			t.Errorf("client-a's retry: %v %v; want client-a's reply (execution %d)", a2.err, a2.reply, a.reply.Execution)
		}
		if got := p.executions.Load(); got != 2 {
			t.Errorf("executions = %d; want 2", got)
		}
	})

	t.Run("ReplayInAnotherProcess", func(t *testing.T) {
		t.Parallel()
		store := newStore(t)
		key := newKey(t)
		p1, p2 := &payments{}, &payments{}
		first := charge(serve(t, core.New(store), p1), req(), idemgrpc.KeyMetadata, key)
		// A new interceptor has seen no response: it finds the type by the
		// method's descriptor in the protobuf registry.
		again := charge(serve(t, core.New(store), p2), req(), idemgrpc.KeyMetadata, key)
		if first.err != nil || again.err != nil || !again.replayed || !proto.Equal(first.reply, again.reply) {
			t.Errorf("replay by another server: %v, %v (replayed %v); want the first reply %v", first.err, again.err, again.replayed, first.reply)
		}
		if got := p2.executions.Load(); got != 0 {
			t.Errorf("the second server ran its handler %d times; want 0", got)
		}
	})
}

func TestDefaultFailurePolicy(t *testing.T) {
	stored := map[codes.Code]bool{
		codes.InvalidArgument: true, codes.NotFound: true, codes.AlreadyExists: true, codes.PermissionDenied: true,
		codes.FailedPrecondition: true, codes.OutOfRange: true, codes.Unauthenticated: true,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := idemgrpc.DefaultFailurePolicy(c); got != stored[c] {
			t.Errorf("DefaultFailurePolicy(%v) = %v; want %v: only the codes a retry cannot change are stored", c, got, stored[c])
		}
	}
}

// retryDelay returns the google.rpc.RetryInfo delay of err, or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// flakyStore is a store whose Claim fails with core.ErrStoreUnavailable
// while down is set.
type flakyStore struct {
	core.Store
	down atomic.Bool
}

func (s *flakyStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if s.down.Load() {
		return core.Claim{}, fmt.Errorf("%w: test outage", core.ErrStoreUnavailable)
	}
	return s.Store.Claim(ctx, req)
}
