// Package pdf turns an HTML document into a PDF with a headless Chromium (Debian's
// chromium, driven over the DevTools protocol by chromedp): Chromium lays the text out
// with its own shaping (HarfBuzz: joined Arabic letters, right-to-left runs, CJK), finds
// the fonts through fontconfig (Debian's fonts-noto-cjk for Chinese, Japanese and Korean)
// and embeds the subset of each font that the page uses, so the PDF prints the same on any
// printer. One browser serves every rendering; each rendering has a tab of its own.
package pdf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// DefaultChromium is where Debian's chromium package puts the browser.
const DefaultChromium = "/usr/bin/chromium"

// Paper is a page size. A zero Height makes one page as long as the content (a receipt
// roll).
type Paper struct {
	Name     string
	WidthMM  float64
	HeightMM float64
	MarginMM float64
	// Footer, when set, is printed in the bottom margin of every page: HTML in which
	// Chromium fills elements of class pageNumber and totalPages. It must set its own
	// font size (Chromium's default for it is 0).
	Footer string
}

var (
	// A4 is ISO 216 A4, portrait, with 10 mm margins.
	A4 = Paper{Name: "A4", WidthMM: 210, HeightMM: 297, MarginMM: 10}
	// Receipt80 is an 80 mm thermal roll (72 mm printable), one page as long as the content.
	Receipt80 = Paper{Name: "RECEIPT_80MM", WidthMM: 80, MarginMM: 4}
)

// Options configure Start.
type Options struct {
	// Chromium is the browser's executable; empty means DefaultChromium.
	Chromium string
	// Tabs bounds the renderings at once (each is a tab of the one browser); 0 means 2.
	Tabs int
	// Timeout bounds one rendering; 0 means 60 s (a few hundred milliseconds on an idle machine).
	Timeout time.Duration
}

// Renderer renders HTML to PDF. It is safe for concurrent use.
type Renderer struct {
	opts Options
	tabs chan struct{}

	mu      sync.Mutex
	dataDir string
	alloc   context.CancelFunc
	browser context.Context
	cancel  context.CancelFunc
}

// ErrUnavailable wraps a failure of the browser: the same rendering may succeed on retry.
var ErrUnavailable = errors.New("pdf renderer unavailable")

// ErrTooWide is a page whose content is wider than its paper: a layout error, not the
// browser's.
var ErrTooWide = errors.New("pdf: content wider than the paper")

type measure struct {
	Width       int     `json:"width"`
	ScrollWidth int     `json:"scrollWidth"`
	Height      float64 `json:"height"`
}

// New returns a Renderer that launches the browser at its first rendering (and again
// after the browser has gone away).
func New(o Options) *Renderer {
	if o.Chromium == "" {
		o.Chromium = DefaultChromium
	}
	if o.Tabs <= 0 {
		o.Tabs = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	return &Renderer{opts: o, tabs: make(chan struct{}, o.Tabs)}
}

// Start launches the browser now and checks that it answers.
func Start(o Options) (*Renderer, error) {
	r := New(o)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.launchLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

// launchLocked starts a fresh browser with a fresh profile directory.
func (r *Renderer) launchLocked() error {
	if _, err := os.Stat(r.opts.Chromium); err != nil {
		return fmt.Errorf("%w: chromium: %v (Debian package chromium; `make deps` installs it)", ErrUnavailable, err)
	}
	dir, err := os.MkdirTemp("", "taxrefund-chromium-")
	if err != nil {
		return fmt.Errorf("chromium profile: %w", err)
	}
	// The flags a headless browser run as root needs (no sandbox: root cannot have the
	// setuid one), and none of the background traffic: the pages are self-contained.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(r.opts.Chromium),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("font-render-hinting", "none"),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// The first Do starts the browser. It runs on the browser's own context: chromedp
	// ties the browser's life to the context of its first Do, so a context with a timeout
	// here would close the browser when it ends.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		_ = os.RemoveAll(dir)
		return fmt.Errorf("%w: start chromium: %v", ErrUnavailable, err)
	}
	r.dataDir, r.alloc, r.browser, r.cancel = dir, acancel, bctx, bcancel
	return nil
}

// Close stops the browser and removes its profile directory.
func (r *Renderer) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *Renderer) closeLocked() {
	if r.cancel == nil {
		return
	}
	_ = chromedp.Cancel(r.browser) // closes the browser gracefully
	r.cancel()
	r.alloc()
	_ = os.RemoveAll(r.dataDir)
	r.cancel, r.alloc, r.browser = nil, nil, nil
}

// browserCtx returns the browser's context, restarting a browser that has gone away.
func (r *Renderer) browserCtx() (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.browser != nil && r.browser.Err() == nil {
		return r.browser, nil
	}
	r.closeLocked()
	if err := r.launchLocked(); err != nil {
		return nil, err
	}
	return r.browser, nil
}

const mmPerInch = 25.4

// Render lays html out on paper and returns the PDF. The page must be self-contained
// (inline styles, images as data: URIs): the browser fetches nothing.
func (r *Renderer) Render(ctx context.Context, html string, paper Paper) ([]byte, error) {
	select {
	case r.tabs <- struct{}{}:
		defer func() { <-r.tabs }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	bctx, err := r.browserCtx()
	if err != nil {
		return nil, err
	}
	tctx, cancel := chromedp.NewContext(bctx) // a new tab, closed by cancel
	defer cancel()
	tctx, cancelT := context.WithTimeout(tctx, r.opts.Timeout)
	defer cancelT()
	stop := context.AfterFunc(ctx, cancelT)
	defer stop()

	margin := paper.MarginMM / mmPerInch
	var out []byte
	// The page is laid out at the printable width, so that the height measured for a
	// roll is the height printed.
	widthPx := int64(math.Round((paper.WidthMM - 2*paper.MarginMM) / mmPerInch * 96))
	err = chromedp.Do(tctx,
		chromedp.EmulateViewport(widthPx, 1000),
		chromedp.Navigate("about:blank"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
			if err != nil {
				return err
			}
			_, err = cdp.Call(ctx, t, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: html})
			return err
		}),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			// Wait until every font is loaded and every image decoded, then measure
			// the content for a roll of paper.
			m, err := chromedp.Evaluate[measure](`(async () => {
				await document.fonts.ready;
				await Promise.all(Array.from(document.images, i => i.decode().catch(() => {})));
				const e = document.documentElement;
				return {width: window.innerWidth, scrollWidth: e.scrollWidth, height: e.getBoundingClientRect().height};
			})()`, chromedp.EvalAwaitPromise)(ctx, t)
			if err != nil {
				return err
			}
			// Content wider than the paper would be shrunk to fit, and the receipt's
			// measured height would no longer be the printed one: a layout error.
			if m.ScrollWidth > m.Width {
				return fmt.Errorf("%w: content is %d px wide, the paper's printable width %d px", ErrTooWide, m.ScrollWidth, m.Width)
			}
			h := m.Height
			height := paper.HeightMM / mmPerInch
			if paper.HeightMM == 0 {
				// CSS pixels are 1/96 inch; a little slack keeps the last line on the page.
				height = math.Ceil(h)/96 + 2*margin + 0.25
			}
			opts := []chromedp.PDFOption{
				chromedp.PDFPaper(chromedp.PaperSize{Width: paper.WidthMM / mmPerInch, Height: height}),
				chromedp.PDFMargin(margin),
				chromedp.PDFPrintBackground(),
			}
			if paper.Footer != "" {
				opts = append(opts, chromedp.PDFHeaderTemplate("<span></span>"), chromedp.PDFFooterTemplate(paper.Footer))
			}
			out, err = chromedp.PrintToPDF(opts...)(ctx, t)
			return err
		}),
	)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrTooWide) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: render %s: %v", ErrUnavailable, paper.Name, err)
	}
	return out, nil
}
