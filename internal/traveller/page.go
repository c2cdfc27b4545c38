package traveller

import (
	_ "embed"
	"html/template"
	"log/slog"
	"net/http"

	"taxrefund/internal/fault"
)

//go:embed page.html.tmpl
var pageSource string

var pageTmpl = template.Must(template.New("page").Parse(pageSource))

// page is the traveller's status page: a form and the answer, no script, no resource
// from anywhere else.
type page struct {
	svc *Service
	log *slog.Logger
}

func newPage(s *Service, log *slog.Logger) *page { return &page{svc: s, log: log} }

type pageView struct {
	Query   Query
	Answer  *Answer
	Problem string
	Fields  map[string]string
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	v := pageView{Fields: map[string]string{}}
	status := http.StatusOK
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		v.Query = Query{Number: r.PostFormValue("form_number"), Last4: r.PostFormValue("document_last4"), Nationality: r.PostFormValue("nationality")}
		a, err := p.svc.Lookup(r.Context(), clientAddr(r.RemoteAddr), v.Query)
		if err == nil {
			v.Answer = &a
			break
		}
		fe, ok := fault.As(err)
		if !ok {
			p.log.ErrorContext(r.Context(), "refund status page", "error", err)
			v.Problem, status = "The service cannot answer now. Please try again later.", http.StatusServiceUnavailable
			break
		}
		v.Problem = fe.Message
		for _, f := range fe.Violations {
			v.Fields[f.Field] = f.Description
		}
		switch fe.Kind {
		case fault.Exhausted:
			status = http.StatusTooManyRequests
		case fault.Invalid:
			status = http.StatusBadRequest
		case fault.NotFound:
			status = http.StatusNotFound
		default:
			status = http.StatusServiceUnavailable
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, v); err != nil {
		p.log.ErrorContext(r.Context(), "refund status page", "error", err)
	}
}
