package traveller

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	travellerv1 "taxrefund/api/taxrefund/traveller/v1"
	"taxrefund/internal/server"
)

// Handler implements TravellerService.
type Handler struct {
	travellerv1.UnimplementedTravellerServiceServer
	svc *Service
}

// NewHandler returns a Handler.
func NewHandler(s *Service) *Handler { return &Handler{svc: s} }

// GetRefundStatus answers a traveller's look-up.
func (h *Handler) GetRefundStatus(ctx context.Context, req *travellerv1.GetRefundStatusRequest) (*travellerv1.GetRefundStatusResponse, error) {
	var addr netip.Addr
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = clientAddr(p.Addr.String())
	}
	a, err := h.svc.Lookup(ctx, addr, Query{Number: req.GetFormNumber(), Last4: req.GetDocumentLast4(), Nationality: req.GetNationality()})
	if err != nil {
		return nil, err
	}
	return toProto(a), nil
}

func toProto(a Answer) *travellerv1.GetRefundStatusResponse {
	date := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.DateOnly)
	}
	return &travellerv1.GetRefundStatusResponse{
		Status:      travellerv1.RefundStatus(travellerv1.RefundStatus_value["REFUND_STATUS_"+string(a.Status)]),
		StatusText:  a.Text,
		Amount:      a.Amount.StringFixed(2),
		ClaimBy:     date(a.ClaimBy),
		Ports:       a.Ports,
		PaidMethod:  a.PaidMethod,
		PaidDate:    date(a.PaidDate),
		CaptureDate: date(a.CaptureDate),
	}
}

// clientAddr is the IP of a "host:port" remote address (the zero Addr when unparsable:
// every such client then shares one budget).
func clientAddr(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// ServerOptions configure NewServer.
type ServerOptions struct {
	// TLS holds the server certificate; clients present none.
	TLS *tls.Config
	Log *slog.Logger
	// Unary run first on every gRPC call (metrics).
	Unary []grpc.UnaryServerInterceptor
}

// NewServer returns the traveller's listener: TravellerService over gRPC and the status
// page, both over TLS on one port (gRPC is told apart by its content type over HTTP/2).
func NewServer(svc *Service, o ServerOptions) (*http.Server, *grpc.Server) {
	tlsConf := o.TLS.Clone()
	tlsConf.ClientAuth = tls.NoClientCert
	tlsConf.ClientCAs = nil
	tlsConf.VerifyPeerCertificate = nil
	tlsConf.VerifyConnection = nil
	tlsConf.NextProtos = []string{"h2", "http/1.1"}
	unary := append([]grpc.UnaryServerInterceptor{recoverUnary(o.Log)}, o.Unary...)
	unary = append(unary, errorUnary(o.Log))
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.MaxRecvMsgSize(4<<10))
	travellerv1.RegisterTravellerServiceServer(gs, NewHandler(svc))
	reflection.Register(gs)
	page := newPage(svc, o.Log)
	hs := &http.Server{
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				gs.ServeHTTP(w, r)
				return
			}
			page.ServeHTTP(w, r)
		}),
	}
	return hs, gs
}

// Serve serves hs on lis (TLS) until ctx ends, then shuts down within 10 s.
func Serve(ctx context.Context, hs *http.Server, lis net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- hs.Serve(tls.NewListener(lis, hs.TLSConfig)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-done; err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

func errorUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := server.Status(err)
		if st.Code() == codes.Internal || st.Code() == codes.Unavailable {
			log.ErrorContext(ctx, "request failed", "method", info.FullMethod, "error", err)
		}
		return nil, st.Err()
	}
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// TLSConfig loads the listener's server certificate and key (PEM). Travellers' phones
// must trust its issuer: in production a publicly trusted certificate, in development
// the dev CA's server.pem.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("traveller listener certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
