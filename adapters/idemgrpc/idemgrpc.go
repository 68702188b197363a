package idemgrpc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/idemkit/idemkit/core"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Metadata keys read and written by the interceptor (gRPC metadata keys
// are lower case).
const (
	// KeyMetadata carries the idempotency key of a request, quoted
	// ("8e03…") or bare, as the Idempotency-Key HTTP header does.
	KeyMetadata = "idempotency-key"
	// ReplayedMetadata is set to "true" in the response header metadata
	// of a replay.
	ReplayedMetadata = "idempotency-replayed"
)

// Kinds of stored result: the first byte of what the engine stores.
const (
	resultMessage byte = 'm' // the response message, in protobuf wire format
	resultStatus  byte = 's' // a google.rpc.Status, in protobuf wire format
)

// statusMark precedes the encoded status in the text of a stored failure.
const statusMark = "idemgrpc-status:"

// FailurePolicy reports whether a handler's error with status code c is
// stored, and replayed with the same status to every retry of its key
// (true), or releases the claim, so that a retry runs the handler again
// (false). [DefaultFailurePolicy] is the default.
type FailurePolicy func(c codes.Code) bool

// DefaultFailurePolicy stores the errors a retry cannot change —
// InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
// FailedPrecondition, OutOfRange and Unauthenticated, the counterpart of
// the 4xx responses the HTTP adapters store — and releases the others
// (Unknown, Internal, Unavailable, DeadlineExceeded, Aborted,
// ResourceExhausted, Canceled, DataLoss, and Unimplemented, which a deploy
// may change), the counterpart of a 5xx.
func DefaultFailurePolicy(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unauthenticated:
		return true
	}
	return false
}

// ScopeFunc returns the scope of a call: the authenticated client, tenant
// or API key, from ctx (auth metadata, the peer's certificate, whatever an
// earlier interceptor put there). fullMethod is the call's
// "/package.Service/Method". The storage key is derived from (scope, key),
// so two clients that pick the same key never see each other's responses.
type ScopeFunc func(ctx context.Context, fullMethod string) string

// Option configures [UnaryServerInterceptor].
type Option func(*config)

type config struct {
	methods   map[string]bool // nil: every unary method
	optional  bool
	strict    bool
	scope     ScopeFunc
	failure   FailurePolicy
	responses map[string]protoreflect.MessageType
	// invalid is the panic message of an option whose bad value the config
	// does not keep; UnaryServerInterceptor panics with the first.
	invalid string
}

// invalidOption is an option whose value UnaryServerInterceptor refuses,
// with msg.
func invalidOption(msg string) Option {
	return func(c *config) {
		if c.invalid == "" {
			c.invalid = msg
		}
	}
}

// WithMethods guards only the given methods, by full name
// ("/package.Service/Method"); calls of other methods pass straight
// through. By default every unary method is guarded. No method at all, or
// an empty name, is invalid (UnaryServerInterceptor panics).
func WithMethods(fullMethods ...string) Option {
	if len(fullMethods) == 0 {
		return invalidOption("idemgrpc: WithMethods(): want at least one method")
	}
	for _, m := range fullMethods {
		if m == "" {
			return invalidOption(fmt.Sprintf("idemgrpc: WithMethods(%q): want no empty method name", fullMethods))
		}
	}
	return func(c *config) {
		c.methods = make(map[string]bool, len(fullMethods))
		for _, m := range fullMethods {
			c.methods[m] = true
		}
	}
}

// WithKeyRequired sets whether a call of a guarded method without an
// idempotency-key is refused with InvalidArgument (true, the default) or
// passes through unguarded (false).
func WithKeyRequired(required bool) Option { return func(c *config) { c.optional = !required } }

// WithStrictKeys accepts only the quoted form of the key ("…"); bare keys
// are refused with InvalidArgument. Off by default.
func WithStrictKeys(strict bool) Option { return func(c *config) { c.strict = strict } }

// WithScope sets the scope function; see [ScopeFunc]. Without one every
// client shares one key space: a client that guesses or reuses another
// client's key gets that client's stored response. A nil f is the
// default: no scope.
func WithScope(f ScopeFunc) Option { return func(c *config) { c.scope = f } }

// WithFailurePolicy replaces [DefaultFailurePolicy]. p must not be nil
// (UnaryServerInterceptor panics).
func WithFailurePolicy(p FailurePolicy) Option { return func(c *config) { c.failure = p } }

// WithResponse names the response type of a method whose descriptor is not
// in [protoregistry.GlobalFiles] (a service written without generated
// code): replays of fullMethod decode into a new message of resp's type.
// Generated services need no such option. An empty fullMethod or a nil
// resp is invalid (UnaryServerInterceptor panics).
func WithResponse(fullMethod string, resp proto.Message) Option {
	if fullMethod == "" || resp == nil {
		return invalidOption(fmt.Sprintf("idemgrpc: WithResponse(%q, %T): want a method name and a message", fullMethod, resp))
	}
	return func(c *config) {
		if c.responses == nil {
			c.responses = make(map[string]protoreflect.MessageType)
		}
		c.responses[fullMethod] = resp.ProtoReflect().Type()
	}
}

// UnaryServerInterceptor returns an interceptor that runs each guarded
// unary call at most once per scoped idempotency key with engine's
// decisions, leases and store (see [core.Engine.Do]): the first call runs
// the handler and stores its response; a retry with the same key and the
// same request message gets the stored response without running the
// handler, with the header metadata idempotency-replayed: true. See the
// package documentation for the status codes of refusals and for which
// handler errors are stored. It panics if engine is nil or an option's
// value is invalid, naming the option and the value.
func UnaryServerInterceptor(engine *core.Engine, opts ...Option) grpc.UnaryServerInterceptor {
	if engine == nil {
		panic("idemgrpc: UnaryServerInterceptor: nil engine")
	}
	c := config{failure: DefaultFailurePolicy}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.invalid != "":
		panic(c.invalid)
	case c.failure == nil:
		panic("idemgrpc: WithFailurePolicy(nil): want a function")
	}
	i := &interceptor{engine: engine, cfg: c}
	return i.intercept
}

type interceptor struct {
	engine *core.Engine
	cfg    config
	// learned holds the response type of each method whose handler ran in
	// this process, for methods the registry does not describe.
	learned sync.Map // full method → protoreflect.MessageType
}

func (i *interceptor) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if i.cfg.methods != nil && !i.cfg.methods[info.FullMethod] {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(KeyMetadata)
	if len(vals) == 0 {
		if i.cfg.optional {
			return handler(ctx, req)
		}
		return nil, status.Error(codes.InvalidArgument, "missing idempotency-key")
	}
	// The engine bounds the key's length (core.WithMaxKeyLength) in Do.
	key, err := core.ParseKey(vals, i.cfg.strict, math.MaxInt)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, strings.Replace(err.Error(), "Idempotency-Key field", "idempotency-key value", 1))
	}
	in, ok := req.(proto.Message)
	if !ok {
		return nil, status.Errorf(codes.Internal, "idemgrpc: the request of %s is a %T, not a protocol buffer message", info.FullMethod, req)
	}
	input, err := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "idemgrpc: marshalling the request of %s: %v", info.FullMethod, err)
	}
	call := core.Call{Key: key, Name: info.FullMethod, Input: input}
	if i.cfg.scope != nil {
		call.Scope = i.cfg.scope(ctx, info.FullMethod)
	}

	var (
		ran     bool
		resp    any
		handErr error
	)
	out, err := i.engine.Do(ctx, call, func(ctx context.Context) ([]byte, error) {
		ran = true
		resp, handErr = handler(ctx, req)
		if handErr != nil {
			st := status.Convert(handErr)
			if i.cfg.failure(st.Code()) {
				// Stored like a result, so a handler's core.MarkNotApplied
				// still releases it.
				b, err := proto.Marshal(st.Proto())
				if err != nil {
					return nil, &handlerError{err: handErr, text: "idemgrpc: " + err.Error()}
				}
				return append([]byte{resultStatus}, b...), nil
			}
			// Released, unless the handler declared it applied
			// (core.MarkApplied): then its text is what the engine stores.
			return nil, &handlerError{err: handErr, text: encodeStatus(st)}
		}
		m, ok := resp.(proto.Message)
		if !ok {
			return nil, status.Errorf(codes.Internal, "idemgrpc: the response of %s is a %T, not a protocol buffer message", info.FullMethod, resp)
		}
		i.learned.LoadOrStore(info.FullMethod, m.ProtoReflect().Type())
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "idemgrpc: marshalling the response of %s: %v", info.FullMethod, err)
		}
		return append([]byte{resultMessage}, b...), nil
	})
	if ran {
		// The handler's own answer, whatever became of it in the store
		// (a deferred store gives Unavailable: a retry gets the result).
		var he *handlerError
		switch {
		case err == nil:
			return resp, handErr
		case errors.As(err, &he):
			return nil, he.err
		case errors.Is(err, core.ErrStoreUnavailable):
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		return nil, err
	}
	if err != nil {
		return nil, refusal(ctx, err)
	}
	markReplayed(ctx)
	return i.replay(info.FullMethod, out)
}

// handlerError carries a handler's error through the engine: the engine
// stores its text (when the handler declared the work applied), the caller
// gets err back.
type handlerError struct {
	err  error
	text string
}

func (e *handlerError) Error() string { return e.text }

// refusal maps an error of [core.Engine.Do] that did not come from the
// handler to a gRPC status.
func refusal(ctx context.Context, err error) error {
	var inFlight *core.InFlightError
	switch {
	case errors.As(err, &inFlight):
		st := status.New(codes.Aborted, "a call with this idempotency-key is in flight; retry later")
		if withRetry, e := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(max(inFlight.RetryAfter, time.Second))}); e == nil {
			st = withRetry
		}
		return st.Err()
	case errors.Is(err, core.ErrFailureReplayed):
		markReplayed(ctx)
		return decodeStatus(err.Error())
	case errors.Is(err, core.ErrResultOmitted):
		// The call ran; its response was over core.WithMaxResponseBytes
		// and kept without its bytes.
		markReplayed(ctx)
		return status.Error(codes.DataLoss, "idemgrpc: the call with this idempotency-key ran, and its response was too large to be kept")
	case errors.Is(err, core.ErrFingerprintMismatch):
		return status.Error(codes.FailedPrecondition, "this idempotency-key was first used with another request")
	case errors.Is(err, core.ErrMissingKey), errors.Is(err, core.ErrInvalidKey):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, core.ErrBodyTooLarge):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, core.ErrStoreUnavailable):
		return status.Error(codes.Unavailable, "the idempotency store is unavailable; retry with the same idempotency-key")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// replay turns a stored result into the call's answer.
func (i *interceptor) replay(fullMethod string, out []byte) (any, error) {
	if len(out) == 0 {
		return nil, status.Errorf(codes.Internal, "idemgrpc: the stored response of %s is empty", fullMethod)
	}
	switch out[0] {
	case resultMessage:
		mt, err := i.responseType(fullMethod)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		m := mt.New().Interface()
		if err := proto.Unmarshal(out[1:], m); err != nil {
			return nil, status.Errorf(codes.Internal, "idemgrpc: the stored response of %s does not decode: %v", fullMethod, err)
		}
		return m, nil
	case resultStatus:
		var sp spb.Status
		if err := proto.Unmarshal(out[1:], &sp); err != nil || codes.Code(sp.Code) == codes.OK {
			return nil, status.Errorf(codes.Internal, "idemgrpc: the stored status of %s does not decode", fullMethod)
		}
		return nil, status.FromProto(&sp).Err()
	}
	return nil, status.Errorf(codes.Internal, "idemgrpc: the stored result of %s is of an unknown kind", fullMethod)
}

// responseType finds the Go type of fullMethod's response: from
// WithResponse, the method's descriptor in the registries, or the
// handler's response seen earlier in this process.
func (i *interceptor) responseType(fullMethod string) (protoreflect.MessageType, error) {
	if mt, ok := i.cfg.responses[fullMethod]; ok {
		return mt, nil
	}
	if mt, ok := i.learned.Load(fullMethod); ok {
		return mt.(protoreflect.MessageType), nil
	}
	svc, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if ok {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if sd, isSvc := d.(protoreflect.ServiceDescriptor); err == nil && isSvc {
			if md := sd.Methods().ByName(protoreflect.Name(method)); md != nil {
				if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName()); err == nil {
					return mt, nil
				}
				return dynamicpb.NewMessageType(md.Output()), nil
			}
		}
	}
	return nil, fmt.Errorf("idemgrpc: the response type of %s is unknown: its service is not in the protobuf registry (generated code registers it); name it with idemgrpc.WithResponse", fullMethod)
}

// markReplayed sets the replay marker in the response header metadata.
func markReplayed(ctx context.Context) {
	// Fails only outside a gRPC server (a direct call of the interceptor):
	// there is nobody to tell.
	_ = grpc.SetHeader(ctx, metadata.Pairs(ReplayedMetadata, "true"))
}

// encodeStatus is the text a stored failure carries: the status in
// protobuf wire format, base64.
func encodeStatus(st *status.Status) string {
	b, err := proto.Marshal(st.Proto())
	if err != nil {
		return "idemgrpc: " + err.Error()
	}
	return statusMark + base64.RawStdEncoding.EncodeToString(b)
}

// decodeStatus returns the status a stored failure's text carries; Internal
// if it carries none.
func decodeStatus(text string) error {
	if i := strings.LastIndex(text, statusMark); i >= 0 {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimSpace(text[i+len(statusMark):]))
		var sp spb.Status
		if err == nil && proto.Unmarshal(b, &sp) == nil && codes.Code(sp.Code) != codes.OK {
			return status.FromProto(&sp).Err()
		}
	}
	return status.Error(codes.Internal, "idemgrpc: the call with this idempotency-key failed after its work was applied")
}
