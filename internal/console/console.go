// Package console is the browser console of the people at the desks and in the tax
// office: customs officers confirm exports, cashiers pay refunds, officials review the
// month and the agencies' settlement declarations. It is served by `taxrefund serve` on
// its own HTTPS listener (-console-addr) and calls the very handlers the gRPC API calls,
// through server.Local: the same authorization matrix, registry check, rate budget and
// error mapping, as the party the session is bound to.
//
// Sign-in: a party's certificate-authenticated call to ConsoleService.CreateSignInLink
// (`refundctl console`) mints a one-time link valid for a minute; opening it starts a
// session bound to that party (an HttpOnly, Secure, SameSite=Strict cookie, signed out
// after IdleTimeout without use). No password is stored anywhere.
//
// Pages are rendered on the server (html/template); the CSS and the little JavaScript
// are embedded. The Content-Security-Policy allows no inline script or style, every form
// carries the session's CSRF token, and document numbers travel only in POST bodies,
// never in a URL or a log line.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	consolev1 "taxrefund/api/taxrefund/console/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/fault"
	"taxrefund/internal/immediate"
	"taxrefund/internal/payouts"
	"taxrefund/internal/refund"
	"taxrefund/internal/server"
)

//go:embed web
var web embed.FS

// Defaults of Deps.
const (
	DefaultIdleTimeout = 15 * time.Minute
	// DefaultReportMaxAge is serve -console-report-max-age's default.
	DefaultReportMaxAge = time.Minute
	LinkTTL             = time.Minute
	cookieName          = "__Host-console"
)

// Desks is what the cashier's page needs of the payouts service beyond the gRPC API.
type Desks interface {
	DeskOf(ctx context.Context, code string) (payouts.Desk, error)
	CashToday(ctx context.Context, doc refund.Document) (payouts.CashToday, error)
}

// Captures is what the refund point's page needs of the immediate-refund service: its
// prepayments awaiting capture.
type Captures interface {
	DueCaptures(ctx context.Context, desk string) ([]immediate.DueCapture, error)
}

// Deps are what a Console needs.
type Deps struct {
	// Local runs the handlers as the session's party (wired by server.New).
	Local     *server.Local
	Desk      deskv1.DeskServiceServer
	Authority authorityv1.AuthorityServiceServer
	Desks     Desks
	// Captures lists a refund point's prepayments due for capture; nil: not shown.
	Captures Captures
	// PDF renders the month for signature (GET /official/pdf); nil: not offered.
	PDF PDF
	// BaseURL is where browsers reach the console, e.g. https://127.0.0.1:50443.
	BaseURL string
	// IdleTimeout signs a session out after this long without a request; 0: the default.
	IdleTimeout time.Duration
	// ReportMaxAge is the max_age the officials' month page asks its report and
	// reconciliation summary with (serve -console-report-max-age); 0: computed for every
	// view. Exports and the PDF for signature are always computed now.
	ReportMaxAge time.Duration
	Now          func() time.Time
	Log          *slog.Logger
}

// Console serves the pages and ConsoleService.
type Console struct {
	consolev1.UnimplementedConsoleServiceServer
	d        Deps
	sessions *sessions
	pages    map[string]*template.Template
	pdfTmpl  *template.Template
	mux      *http.ServeMux
}

// New returns a Console.
func New(d Deps) (*Console, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = DefaultIdleTimeout
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := url.Parse(d.BaseURL); err != nil || !strings.HasPrefix(d.BaseURL, "https://") {
		return nil, fmt.Errorf("console base URL %q: want https://host:port", d.BaseURL)
	}
	c := &Console{d: d, sessions: newSessions(d.Now, d.IdleTimeout, LinkTTL), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"cny": cny, "cnyd": cnyDec, "when": when,
		"date":       func(t time.Time) string { return t.Format(time.DateOnly) },
		"list":       func(s ...string) []string { return s },
		"trimMethod": func(s string) string { return strings.TrimPrefix(s, "PAYMENT_METHOD_") },
		"trimStatus": func(s string) string { return strings.TrimPrefix(s, "STORE_STATUS_") },
		"pct":        pct,
		"trimPrepay": func(s string) string { return strings.TrimPrefix(s, "PREPAYMENT_STATE_") },
		"trimDecl":   func(s string) string { return strings.TrimPrefix(s, "DECLARATION_STATUS_") },
	}
	base, err := template.New("base.html").Funcs(funcs).ParseFS(web, "web/base.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(web, "web/page_*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(web, n)
		if err != nil {
			return nil, err
		}
		c.pages[strings.TrimSuffix(strings.TrimPrefix(n, "web/page_"), ".html")] = t
	}
	if c.pdfTmpl, err = template.New("pdf_month.html").Funcs(funcs).ParseFS(web, "web/pdf_month.html"); err != nil {
		return nil, err
	}
	static, err := fs.Sub(web, "web/static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /signin/{token}", c.signIn)
	m.HandleFunc("POST /signout", c.signOut)
	m.HandleFunc("GET /{$}", c.home)
	m.HandleFunc("POST /lang", c.auth(nil, c.switchLang))
	m.HandleFunc("GET /customs", c.auth([]auth.Role{auth.RoleCustoms}, c.customsPage))
	m.HandleFunc("POST /customs", c.auth([]auth.Role{auth.RoleCustoms}, c.customsPost))
	m.HandleFunc("GET /cashier", c.auth([]auth.Role{auth.RoleDesk}, c.cashierPage))
	m.HandleFunc("POST /cashier", c.auth([]auth.Role{auth.RoleDesk}, c.cashierPost))
	m.HandleFunc("GET /refund-point", c.auth([]auth.Role{auth.RoleDesk}, c.refundPointPage))
	m.HandleFunc("POST /refund-point", c.auth([]auth.Role{auth.RoleDesk}, c.refundPointPost))
	m.HandleFunc("GET /official", c.auth([]auth.Role{auth.RoleAuthority}, c.officialPage))
	m.HandleFunc("GET /official/declarations", c.auth([]auth.Role{auth.RoleAuthority}, c.declarationsPage))
	m.HandleFunc("POST /official/declarations", c.auth([]auth.Role{auth.RoleAuthority}, c.declarationsPost))
	m.HandleFunc("GET /official/export", c.auth([]auth.Role{auth.RoleAuthority}, c.exportFile))
	m.HandleFunc("GET /official/pdf", c.auth([]auth.Role{auth.RoleAuthority}, c.monthPDFFile))
	m.HandleFunc("GET /official/stores", c.auth([]auth.Role{auth.RoleAuthority}, c.storesPage))
	m.HandleFunc("POST /official/stores", c.auth([]auth.Role{auth.RoleAuthority}, c.storesPost))
	m.HandleFunc("GET /official/parameters", c.auth([]auth.Role{auth.RoleAuthority}, c.parametersPage))
	m.HandleFunc("POST /official/parameters", c.auth([]auth.Role{auth.RoleAuthority}, c.parametersPost))
	m.HandleFunc("GET /official/journal", c.auth([]auth.Role{auth.RoleAuthority}, c.journalPage))
	m.HandleFunc("POST /official/journal", c.auth([]auth.Role{auth.RoleAuthority}, c.journalPost))
	// A form's trail: its number in the body, never in the URL.
	m.HandleFunc("POST /official/trail", c.auth([]auth.Role{auth.RoleAuthority}, c.trailPost))
	// A payout's trail and a declaration's lines, the same way: the id in the body.
	m.HandleFunc("POST /official/payout-trail", c.auth([]auth.Role{auth.RoleAuthority}, c.payoutTrailPost))
	m.HandleFunc("POST /official/declaration", c.auth([]auth.Role{auth.RoleAuthority}, c.declarationPost))
	c.mux = m
	return c, nil
}

// Handler returns the console's HTTP handler, with its security headers.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		c.mux.ServeHTTP(sw, r)
		// The path only: a sign-in token is the one secret a path carries, and it is cut.
		path := r.URL.Path
		if strings.HasPrefix(path, "/signin/") {
			path = "/signin/…"
		}
		c.d.Log.Info("console request", "method", r.Method, "path", path, "status", sw.code, "took", time.Since(start).Round(time.Microsecond))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// CreateSignInLink mints a one-time sign-in link for the calling party.
func (c *Console) CreateSignInLink(ctx context.Context, _ *consolev1.CreateSignInLinkRequest) (*consolev1.CreateSignInLinkResponse, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil, fault.New(fault.Denied, "NO_PARTY", "no party")
	}
	tok, exp := c.sessions.mint(p)
	return &consolev1.CreateSignInLinkResponse{Url: strings.TrimSuffix(c.d.BaseURL, "/") + "/signin/" + tok, ExpiresAt: timestamppb.New(exp)}, nil
}

// page is what every template gets.
type page struct {
	L     L
	Party auth.Party
	CSRF  string
	Nav   []navItem
	Title string
	// Back is where the language switch returns: this page (a GET's query kept).
	Back   string
	Error  string
	Notice string
	// Detail follows the notice: what was changed (codes, a status, when), not translated.
	Detail  string
	Content any
}

type navItem struct {
	Href, Key string
	Current   bool
}

func navFor(p auth.Party, current string) []navItem {
	var items []navItem
	switch p.Role {
	case auth.RoleCustoms:
		items = []navItem{{Href: "/customs", Key: "nav.customs"}}
	case auth.RoleDesk:
		items = []navItem{{Href: "/cashier", Key: "nav.cashier"}, {Href: "/refund-point", Key: "nav.refundpoint"}}
	case auth.RoleAuthority:
		items = []navItem{{Href: "/official", Key: "nav.official"}, {Href: "/official/declarations", Key: "nav.declaration"}, {Href: "/official/stores", Key: "nav.stores"},
			{Href: "/official/parameters", Key: "nav.params"}, {Href: "/official/journal", Key: "nav.journal"}}
	}
	for i := range items {
		items[i].Current = items[i].Href == current
	}
	return items
}

type ctxKey struct{}

type request struct {
	id string
	s  *session
}

// auth admits a request of a signed-in session whose party has one of roles (nil: any),
// checks the CSRF token of a POST, and hands the session to h.
func (c *Console) auth(roles []auth.Role, h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		var s *session
		if err == nil {
			s, _ = c.sessions.get(ck.Value)
		}
		if s == nil {
			c.render(w, r, http.StatusUnauthorized, "signedout", page{L: L{Lang: pickLang(r.Header.Get("Accept-Language"))}, Title: "signedout"})
			return
		}
		if roles != nil && !containsRole(roles, s.party.Role) {
			c.render(w, r, http.StatusForbidden, "forbidden", c.pageFor(s, r.URL.Path, "forbidden"))
			return
		}
		if r.Method == http.MethodPost {
			// Same-origin only, and the session's token in the body.
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, request{id: ck.Value, s: s})), s)
	}
}

func containsRole(roles []auth.Role, r auth.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func (c *Console) pageFor(s *session, path, title string) page {
	return page{L: L{Lang: s.lang}, Party: s.party, CSRF: s.csrf, Nav: navFor(s.party, path), Title: title, Back: path}
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet && p.Back != "" {
		p.Back = r.URL.RequestURI()
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "base.html", p); err != nil {
		c.d.Log.ErrorContext(r.Context(), "console template", "page", name, "error", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r.Header.Get("Accept-Language"))
	id, s, ok := c.sessions.redeem(r.PathValue("token"), lang)
	if !ok {
		c.render(w, r, http.StatusUnauthorized, "signedout", page{L: L{Lang: lang}, Title: "signedout", Error: "signin.bad"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	c.d.Log.Info("console sign-in", "party", s.party.URI)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		if s, ok := c.sessions.get(ck.Value); ok {
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page", http.StatusForbidden)
				return
			}
			c.sessions.end(ck.Value)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	c.render(w, r, http.StatusOK, "signedout", page{L: L{Lang: pickLang(r.Header.Get("Accept-Language"))}, Title: "signedout", Notice: "signedout"})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	c.auth(nil, func(w http.ResponseWriter, r *http.Request, s *session) {
		switch s.party.Role {
		case auth.RoleCustoms:
			http.Redirect(w, r, "/customs", http.StatusSeeOther)
		case auth.RoleDesk:
			// A refund point in a block pays immediate refunds; an airport desk, refunds.
			if d, err := c.deskOf(r.Context(), s); err == nil && d.Kind == "REFUND_POINT" {
				http.Redirect(w, r, "/refund-point", http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/cashier", http.StatusSeeOther)
		case auth.RoleAuthority:
			http.Redirect(w, r, "/official", http.StatusSeeOther)
		default:
			c.render(w, r, http.StatusForbidden, "forbidden", c.pageFor(s, "/", "forbidden"))
		}
	})(w, r)
}

func (c *Console) switchLang(w http.ResponseWriter, r *http.Request, s *session) {
	lang := langEN
	if r.PostFormValue("lang") == langZH {
		lang = langZH
	}
	c.sessions.setLang(r.Context().Value(ctxKey{}).(request).id, lang)
	back := r.PostFormValue("back")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.ContainsRune(back, '\\') {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// call runs a handler as the session's party through server.Local.
func call[Req, Resp any](ctx context.Context, c *Console, s *session, method string, req Req, h func(context.Context, Req) (Resp, error)) (Resp, error) {
	out, err := c.d.Local.Call(ctx, s.party, method, req, func(ctx context.Context, req any) (any, error) {
		return h(ctx, req.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// errText is what a page shows of a refused call: the API's message, which names the
// rule or field (never a database error: server.Status made it generic).
func errText(err error) string {
	st := status.Convert(err)
	if st.Code() == codes.Internal {
		return "internal error; try again"
	}
	return st.Message()
}
