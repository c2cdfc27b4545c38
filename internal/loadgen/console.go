package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"time"

	consolev1 "taxrefund/api/taxrefund/console/v1"
	"taxrefund/internal/pki"
)

// ConsolePages are the officials' console pages the console scenario renders, each
// timed on its own (the method name of its latency is the path).
var ConsolePages = []string{"/official", "/official/declarations", "/official/stores", "/official/parameters", "/official/journal"}

// prepareConsole returns the visit of a tax official going through the console's pages:
// signed in once through a one-time link the authority's certificate mints
// (ConsoleService.CreateSignInLink), the visit renders each page of ConsolePages in turn
// over HTTPS (the month's page for month, zero: the current one), timing each from the
// request to the last byte of the page.
func prepareConsole(ctx context.Context, c *conns, month time.Time) (visitFunc, error) {
	cc, err := c.get("authority")
	if err != nil {
		return nil, err
	}
	link, err := consolev1.NewConsoleServiceClient(cc).CreateSignInLink(ctx, &consolev1.CreateSignInLinkRequest{})
	if err != nil {
		return nil, fmt.Errorf("sign-in link (is the server's -console-addr set?): %w", err)
	}
	pem, err := os.ReadFile(filepath.Join(c.dir, pki.CACertFile))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in " + c.dir)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 16},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base, _, ok := strings.Cut(link.GetUrl(), "/signin/")
	if !ok {
		return nil, fmt.Errorf("sign-in link %q: no /signin/", link.GetUrl())
	}
	resp, err := client.Get(link.GetUrl())
	if err != nil {
		return nil, fmt.Errorf("sign in to the console: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("sign in to the console: %s", resp.Status)
	}
	return func(ctx context.Context, w *worker) error {
		m := month
		if m.IsZero() {
			m = time.Now().In(shanghai)
		}
		for _, page := range ConsolePages {
			url := base + page
			if page == "/official" {
				url += "?month=" + m.Format("2006-01")
			}
			_ = w.call(ctx, page, func(ctx context.Context) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer func() { _ = resp.Body.Close() }()
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: %s", page, resp.Status)
				}
				return nil
			})
		}
		return nil
	}, nil
}
