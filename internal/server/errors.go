package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
)

const errorDomain = "taxrefund"

// Status maps an error to the gRPC status the client sees. A *fault.Error keeps its
// message and gets details: BadRequest or PreconditionFailure naming the fields, and an
// ErrorInfo with the reason. Anything else is Internal with a generic message: database
// errors never reach a client as text.
func Status(err error) *status.Status {
	if _, ok := status.FromError(err); ok && !isFault(err) {
		return status.Convert(err)
	}
	if month, closed := db.IsClosedMonth(err); closed && !isFault(err) {
		// Foreseeable: the month was closed while the request ran (or the clock is behind).
		err = fault.New(fault.Precondition, "MONTH_CLOSED",
			fmt.Sprintf("accounting month %s is closed: nothing more can be posted in it", month)).With("month", month)
	}
	fe, ok := fault.As(err)
	if !ok {
		if errors.Is(err, context.Canceled) {
			return status.New(codes.Canceled, "request canceled")
		}
		if errors.Is(err, context.DeadlineExceeded) || db.IsStatementTimeout(err) {
			return status.New(codes.DeadlineExceeded, "deadline exceeded; retry with the same request_id")
		}
		if db.IsUnavailable(err) {
			return status.New(codes.Unavailable, "the database is unavailable; retry with the same request_id")
		}
		return status.New(codes.Internal, "internal error; retry with the same request_id")
	}
	code := map[fault.Kind]codes.Code{
		fault.Invalid:      codes.InvalidArgument,
		fault.Precondition: codes.FailedPrecondition,
		fault.NotFound:     codes.NotFound,
		fault.Conflict:     codes.Aborted,
		fault.Denied:       codes.PermissionDenied,
		fault.Unavailable:  codes.Unavailable,
		fault.Exhausted:    codes.ResourceExhausted,
	}[fe.Kind]
	if code == codes.OK {
		code = codes.Internal
	}
	st := status.New(code, fe.Error())
	var details []protoadapt.MessageV1
	info := &errdetails.ErrorInfo{Reason: fe.Reason, Domain: errorDomain, Metadata: fe.Metadata}
	details = append(details, info)
	if len(fe.Violations) > 0 {
		switch fe.Kind {
		case fault.Invalid:
			br := &errdetails.BadRequest{}
			for _, v := range fe.Violations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description, Reason: fe.Reason})
			}
			details = append(details, br)
		default:
			pf := &errdetails.PreconditionFailure{}
			for _, v := range fe.Violations {
				pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: fe.Reason, Subject: v.Field, Description: v.Description})
			}
			details = append(details, pf)
		}
	}
	withDetails, derr := st.WithDetails(details...)
	if derr != nil {
		return st
	}
	return withDetails
}

func isFault(err error) bool {
	_, ok := fault.As(err)
	return ok
}

// errorInterceptor turns handler errors into statuses and logs the unexpected ones once.
func errorInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := Status(err)
		if st.Code() == codes.Internal || st.Code() == codes.Unavailable {
			log.ErrorContext(ctx, "request failed", "method", info.FullMethod, "error", err)
		}
		return nil, st.Err()
	}
}

// errorStreamInterceptor maps a streaming handler's error like errorInterceptor does.
func errorStreamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err == nil {
			return nil
		}
		st := Status(err)
		if st.Code() == codes.Internal || st.Code() == codes.Unavailable {
			log.ErrorContext(ss.Context(), "request failed", "method", info.FullMethod, "error", err)
		}
		return st.Err()
	}
}
