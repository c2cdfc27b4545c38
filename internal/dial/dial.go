// Package dial opens a gRPC client connection to one taxrefund server or to several
// (a comma-separated list of addresses): calls are spread over the servers that answer
// (round_robin) and a call that fails with UNAVAILABLE is retried, on the next server,
// by gRPC itself (ServiceConfig). Every write of the API carries a request_id, so such
// a retry cannot apply a write twice: the server answers it from its idempotency record.
package dial

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// ServiceConfig is the gRPC service config for POS, desk and back-office clients of
// several servers (OPERATIONS.md, "High availability", has it with an example): spread
// calls over every server, and retry a call that failed with UNAVAILABLE (a server
// stopping, or its database failing over) up to 5 attempts in all, backing off from
// 0.2 s to 2 s. A failover of the database takes longer than these retries: a client
// keeps retrying with the same request_id after they are spent.
const ServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.2s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Addresses splits a comma-separated list of host:port addresses.
func Addresses(list string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("server address %q: %w", a, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no server address")
	}
	return out, nil
}

// Host is the host the addresses share, for the TLS server name ("" when they differ).
func Host(list string) (string, error) {
	addrs, err := Addresses(list)
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(addrs[0])
	for _, a := range addrs[1:] {
		if h, _, _ := net.SplitHostPort(a); h != host {
			return "", nil
		}
	}
	return host, nil
}

// scheme names the resolver of a list of addresses.
const scheme = "taxrefund-servers"

// NewClient connects to the servers in list (comma-separated), with TLS from tlsConf and
// ServiceConfig. Each server is checked against its own host name when tlsConf names
// none.
func NewClient(list string, tlsConf *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	addrs, err := Addresses(list)
	if err != nil {
		return nil, err
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithDefaultServiceConfig(ServiceConfig),
	}, opts...)
	if len(addrs) == 1 {
		return grpc.NewClient(addrs[0], opts...)
	}
	r := manual.NewBuilderWithScheme(scheme)
	state := resolver.State{}
	for _, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	r.InitialState(state)
	return grpc.NewClient(scheme+":///"+strings.Join(addrs, ","), append(opts, grpc.WithResolvers(r))...)
}
