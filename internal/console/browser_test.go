package console_test

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium (package chromium). The browser tests fail, never
// skip, without it: `make deps` installs it.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium with a fresh profile and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("%v: %s is needed for the console's browser tests (make deps installs the Debian package chromium)", errNoChromium, chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The harness's CA is made per test and is not in the profile's trust store.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first run starts the browser, on a context without a deadline (a deadline there
	// would stop the browser); the tab's actions then run under one.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	return tctx
}

// run runs actions in the tab, failing the test with what it was doing.
func run(t *testing.T, c context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sc, cancel := context.WithTimeout(c, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sc, actions...); err != nil {
		// What the page showed, for the failure's reader.
		body, _ := chromedp.Run(c, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: %v\npage: %s", what, err, body)
	}
}

// text returns the text of the first element matching sel.
func text(t *testing.T, c context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// screenshot writes the whole page to .data/console-screenshots/<name>.png at the root of
// the module, for review.
func screenshot(t *testing.T, c context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(moduleRoot(t), ".data", "console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// focused returns the name or id of the focused element.
func focused(t *testing.T, c context.Context) string {
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`(function(){var e=document.activeElement;return e?(e.id||e.name||e.tagName):""})()`))
	if err != nil {
		t.Fatalf("focused element: %v", err)
	}
	return s
}

// tabTo presses Tab until the element named want (id or name) has the focus.
func tabTo(t *testing.T, c context.Context, want string) {
	t.Helper()
	for range 40 {
		if focused(t, c) == want {
			return
		}
		run(t, c, "Tab", chromedp.KeyEvent("\t"))
	}
	t.Fatalf("Tab never reached %q (focus is on %q)", want, focused(t, c))
}

func newCertPool(t *testing.T, pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("CA certificate: no PEM")
	}
	return p
}
