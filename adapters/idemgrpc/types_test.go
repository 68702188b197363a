package idemgrpc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemgrpc"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// These tests call the interceptor directly, each call with a new one (a
// process that has seen no response), to show where a replay finds the
// response type.

// invoke calls interceptor i as a server would, with key, and reports
// whether the handler ran.
func invoke(t *testing.T, i grpc.UnaryServerInterceptor, method, key string, req proto.Message, resp func() proto.Message) (any, bool, error) {
	t.Helper()
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(idemgrpc.KeyMetadata, key))
	ran := false
	out, err := i(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
		ran = true
		return resp(), nil
	})
	return out, ran, err
}

// TestReplayDynamic: a method whose descriptor is registered but whose
// response has no Go type replays into a dynamicpb message.
func TestReplayDynamic(t *testing.T) {
	str := func(s string) *string { return &s }
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    str("idemgrpc_dynamic_test.proto"),
		Package: str("idemgrpc.dynamictest"),
		Syntax:  str("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: str("In"), Field: []*descriptorpb.FieldDescriptorProto{{Name: str("v"), JsonName: str("v"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}}},
			{Name: str("Out"), Field: []*descriptorpb.FieldDescriptorProto{{Name: str("id"), JsonName: str("id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:   str("Svc"),
			Method: []*descriptorpb.MethodDescriptorProto{{Name: str("Do"), InputType: str(".idemgrpc.dynamictest.In"), OutputType: str(".idemgrpc.dynamictest.Out")}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("protodesc.NewFile: %v", err)
	}
	if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
		t.Fatalf("RegisterFile: %v", err)
	}
	in, out := fd.Messages().ByName("In"), fd.Messages().ByName("Out")
	msg := func(d protoreflect.MessageDescriptor, v string) proto.Message {
		m := dynamicpb.NewMessage(d)
		m.Set(d.Fields().ByNumber(1), protoreflect.ValueOfString(v))
		return m
	}
	engine := core.New(memstore.New())
	const method = "/idemgrpc.dynamictest.Svc/Do"
	req := msg(in, "1200 EUR")
	if _, ran, err := invoke(t, idemgrpc.UnaryServerInterceptor(engine), method, "k1", req, func() proto.Message { return msg(out, "ch_1") }); err != nil || !ran {
		t.Fatalf("first call: ran %v, err %v; want the handler to run", ran, err)
	}
	got, ran, err := invoke(t, idemgrpc.UnaryServerInterceptor(engine), method, "k1", req, func() proto.Message { return msg(out, "ch_2") })
	if err != nil || ran {
		t.Fatalf("replay: ran %v, err %v; want the stored response", ran, err)
	}
	m, ok := got.(*dynamicpb.Message)
	if !ok || m.Descriptor().FullName() != out.FullName() || m.Get(out.Fields().ByNumber(1)).String() != "ch_1" {
		t.Errorf("replay: %T %v; want a dynamic %s with id ch_1", got, got, out.FullName())
	}
}

// TestReplayUnregistered: a method the registry does not describe replays
// into the type WithResponse names, and without it fails with Internal
// (the handler does not run again).
func TestReplayUnregistered(t *testing.T) {
	engine := core.New(memstore.New())
	const method = "/idemgrpc.unregistered.Svc/Do"
	resp := func() proto.Message { return wrapperspb.String("ch_1") }
	if _, ran, err := invoke(t, idemgrpc.UnaryServerInterceptor(engine), method, "k1", wrapperspb.String("in"), resp); err != nil || !ran {
		t.Fatalf("first call: ran %v, err %v; want the handler to run", ran, err)
	}
	_, ran, err := invoke(t, idemgrpc.UnaryServerInterceptor(engine), method, "k1", wrapperspb.String("in"), resp)
	if ran || status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "WithResponse") {
		t.Errorf("replay without a known type: ran %v, err %v; want Internal naming WithResponse, handler not run", ran, err)
	}
	got, ran, err := invoke(t, idemgrpc.UnaryServerInterceptor(engine, idemgrpc.WithResponse(method, &wrapperspb.StringValue{})), method, "k1", wrapperspb.String("in"), resp)
	if ran || err != nil || !proto.Equal(got.(proto.Message), wrapperspb.String("ch_1")) {
		t.Errorf("replay with WithResponse: ran %v, %v, err %v; want the stored StringValue", ran, got, err)
	}
}
