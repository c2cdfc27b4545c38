package console

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/grpc"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
)

const mExport = "/taxrefund.authority.v1.AuthorityService/ExportReport"

// exportSink collects what ExportReport streams: its header, then the file's chunks. The
// handler uses only Send and Context of its stream.
type exportSink struct {
	grpc.ServerStream
	ctx    context.Context
	header *authorityv1.ExportHeader
	file   bytes.Buffer
}

func (s *exportSink) Context() context.Context { return s.ctx }

func (s *exportSink) Send(m *authorityv1.ExportReportResponse) error {
	if h := m.GetHeader(); h != nil {
		s.header = h
		return nil
	}
	_, err := s.file.Write(m.GetChunk())
	return err
}

// exportFile downloads the month's report as CSV or XLSX, made by the API's ExportReport.
func (c *Console) exportFile(w http.ResponseWriter, r *http.Request, s *session) {
	format := authorityv1.ExportFormat_EXPORT_FORMAT_XLSX
	if r.URL.Query().Get("format") == "csv" {
		format = authorityv1.ExportFormat_EXPORT_FORMAT_CSV
	}
	req := &authorityv1.ExportReportRequest{Month: r.URL.Query().Get("month"), Format: format}
	sink, err := call(r.Context(), c, s, mExport, req, func(ctx context.Context, req *authorityv1.ExportReportRequest) (*exportSink, error) {
		sink := &exportSink{ctx: ctx}
		if err := c.d.Authority.ExportReport(req, sink); err != nil {
			return nil, err
		}
		return sink, nil
	})
	if err != nil || sink.header == nil {
		p := c.pageFor(s, "/official", "nav.official")
		p.Error = "export failed"
		if err != nil {
			p.Error = errText(err)
		}
		p.Content = officialContent{}
		c.render(w, r, http.StatusUnprocessableEntity, "official", p)
		return
	}
	w.Header().Set("Content-Type", sink.header.GetContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", sink.header.GetFileName()))
	w.Header().Set("Content-Length", strconv.Itoa(sink.file.Len()))
	_, _ = w.Write(sink.file.Bytes())
}
