package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"taxrefund/internal/wire"
)

// requestCodec is gRPC's protobuf codec, except that a request that does not decode is
// answered INVALID_ARGUMENT (the caller's fault), where gRPC says INTERNAL. gRPC turns any
// decoding error into INTERNAL before an interceptor sees the call, so the codec decodes
// what it can, remembers the message as malformed and reports success; the first
// interceptor (checkRequest) then refuses the call before any other work.
type requestCodec struct {
	base      encoding.CodecV2
	malformed sync.Map // request message -> struct{}
}

func newRequestCodec() *requestCodec {
	return &requestCodec{base: encoding.GetCodecV2("proto")}
}

func (c *requestCodec) Name() string { return c.base.Name() }

func (c *requestCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.base.Unmarshal(data, v); err != nil {
		if _, ok := v.(proto.Message); !ok {
			return err
		}
		c.malformed.Store(v, struct{}{})
	}
	return nil
}

// check refuses a malformed request, then one with a string field over its size limit
// (wire.CheckLengths), naming the field but never quoting it.
func (c *requestCodec) check(req any) error {
	if _, bad := c.malformed.LoadAndDelete(req); bad {
		return status.Error(codes.InvalidArgument, "the request is not a valid protobuf message of this method")
	}
	if m, ok := req.(proto.Message); ok {
		if err := wire.CheckLengths(m.ProtoReflect()); err != nil {
			return Status(err).Err()
		}
	}
	return nil
}

func (c *requestCodec) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := c.check(req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (c *requestCodec) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, codec: c})
	}
}

// checkedStream checks each message the handler receives.
type checkedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.check(m)
}
