package idemgrpc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"github.com/idemkit/idemkit/adapters/idemgrpc"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A service written without generated code, so that the example stands
// alone: with generated code, register the service as usual and leave
// out WithResponse.
func Example() {
	var executions atomic.Int64
	charge := func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		n := executions.Add(1)
		return wrapperspb.String(fmt.Sprintf("charge %d: %s", n, req.GetValue())), nil
	}

	engine := core.New(memstore.New())
	srv := grpc.NewServer(grpc.UnaryInterceptor(idemgrpc.UnaryServerInterceptor(engine,
		idemgrpc.WithResponse("/example.Payments/Charge", &wrapperspb.StringValue{}),
	)))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "example.Payments",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Charge", Handler: func(s any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			info := &grpc.UnaryServerInfo{Server: s, FullMethod: "/example.Payments/Charge"}
			return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return charge(ctx, req.(*wrapperspb.StringValue))
			})
		}}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "idempotency-key", `"8e03978e-40d5-43e8"`)
	for range 2 {
		var header metadata.MD
		out := new(wrapperspb.StringValue)
		err := conn.Invoke(ctx, "/example.Payments/Charge", wrapperspb.String("1200 EUR"), out, grpc.Header(&header))
		fmt.Printf("%q replayed=%v err=%v\n", out.GetValue(), header.Get("idempotency-replayed"), err)
	}
	fmt.Println("executions:", executions.Load())
	// Output:
	// "charge 1: 1200 EUR" replayed=[] err=<nil>
	// "charge 1: 1200 EUR" replayed=[true] err=<nil>
	// executions: 1
}

// The server of README's gRPC section (compiled, not run: it serves until
// stopped).
func ExampleUnaryServerInterceptor() {
	engine := core.New(memstore.New())
	srv := grpc.NewServer(grpc.UnaryInterceptor(idemgrpc.UnaryServerInterceptor(engine,
		idemgrpc.WithScope(func(ctx context.Context, fullMethod string) string {
			md, _ := metadata.FromIncomingContext(ctx) // scope keys by client: see "Guarantees"
			return strings.Join(md.Get("x-api-key"), ",")
		}),
	)))
	// paymentspb.RegisterPaymentsServer(srv, &payments{}) — your generated service, as usual
	lis, _ := net.Listen("tcp", "127.0.0.1:50051")
	srv.Serve(lis)
}
