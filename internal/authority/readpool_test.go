package authority_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
	"google.golang.org/protobuf/proto"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/authority"
	"taxrefund/internal/db"
	"taxrefund/internal/registry"
	"taxrefund/internal/report"
)

// TestReadsThatMayLag: without a read pool (serve without -read-database-url) the monthly
// report, the reconciliation and the exports answer as they always did: no read_source,
// the CSV exactly report.CSV's. With one, they read it, acting as the authority's role,
// and say where they read: here the read pool reaches a server that is not in recovery
// (what prefer-standby does when no standby is up), so replica false and lag 0; the CSV
// ends with the note, the workbook's subtitle carries it, the figures are the same.
// (The failover test reads a real standby of the HA cluster.)
func TestReadsThatMayLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fixture()
	// As the server scopes every call: the read pool's role sees rows through the
	// party's row-level security, as the authority's pool does.
	party := auth.Party{Role: auth.RoleAuthority, Office: "sat", URI: "taxrefund://authority/sat"}
	official := db.WithParty(auth.NewContext(e.ctx, party), string(party.Role), party.Code())

	reads, err := db.OpenReadPool(e.ctx, e.pool.Config().ConnString(), 2, db.AuthorityRole)
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	var role string
	if err := reads.QueryRow(e.ctx, `SELECT current_user`).Scan(&role); err != nil || role != db.AuthorityRole {
		t.Fatalf("the read pool acts as %q (%v), want %s", role, err, db.AuthorityRole)
	}
	withReads := authority.New(authority.Deps{Expirer: e.forms, Pool: e.pool, Registry: registry.New(e.pool, e.clock.Now), Settlement: e.settle,
		Now: e.clock.Now, Reads: reads})

	export := func(h *authority.Handler, format authorityv1.ExportFormat) (*authorityv1.ExportHeader, []byte) {
		t.Helper()
		s := &exportStream{ctx: official}
		if err := h.ExportReport(&authorityv1.ExportReportRequest{Month: "2026-10", Format: format}, s); err != nil {
			t.Fatal(err)
		}
		var data []byte
		for _, m := range s.sent[1:] {
			data = append(data, m.GetChunk()...)
		}
		return s.sent[0].GetHeader(), data
	}
	rows, err := report.Monthly(e.ctx, e.pool, october)
	if err != nil {
		t.Fatal(err)
	}
	plainCSV, err := report.CSV(rows)
	if err != nil {
		t.Fatal(err)
	}

	// Without the read pool: nothing says where the figures came from.
	primary, err := e.h.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.h.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	header, data := export(e.h, authorityv1.ExportFormat_EXPORT_FORMAT_CSV)
	if primary.ReadSource != nil || rec.ReadSource != nil || header.ReadSource != nil {
		t.Errorf("without a read pool: read_source %v, %v, %v; want none", primary.ReadSource, rec.ReadSource, header.ReadSource)
	}
	if !bytes.Equal(data, plainCSV) {
		t.Errorf("without a read pool the CSV is\n%s\nwant\n%s", data, plainCSV)
	}

	// With it.
	lagged, err := withReads.MonthlyReport(official, &authorityv1.MonthlyReportRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	src := lagged.GetReadSource()
	if src == nil || src.GetReplica() || src.GetLag().AsDuration() != 0 || src.GetAsOf() == nil {
		t.Errorf("MonthlyReport through a read pool on the primary: read_source %v, want replica false, lag 0, as_of set", src)
	}
	lagged.ReadSource = nil
	if !proto.Equal(lagged, primary) {
		t.Errorf("MonthlyReport through the read pool\n%v\ndiffers from the primary's\n%v", lagged, primary)
	}
	rec2, err := withReads.Reconcile(official, &authorityv1.ReconcileRequest{Month: "2026-10"})
	if err != nil {
		t.Fatal(err)
	}
	if rec2.GetReadSource() == nil {
		t.Error("Reconcile through a read pool: no read_source")
	}
	rec2.ReadSource = nil
	if !proto.Equal(rec2, rec) {
		t.Errorf("Reconcile through the read pool\n%v\ndiffers from the primary's\n%v", rec2, rec)
	}
	header, data = export(withReads, authorityv1.ExportFormat_EXPORT_FORMAT_CSV)
	note := db.ReplicaNote(db.ReadSource{Replica: false, AsOf: header.GetReadSource().GetAsOf().AsTime()})
	want, err := report.AppendNote(bytes.Clone(plainCSV), note)
	if err != nil {
		t.Fatal(err)
	}
	if header.GetReadSource() == nil || !bytes.Equal(data, want) || header.GetSize() != int64(len(data)) {
		t.Errorf("CSV through the read pool (header %v):\n%s\nwant\n%s", header, data, want)
	}
	header, data = export(withReads, authorityv1.ExportFormat_EXPORT_FORMAT_XLSX)
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sub, err := f.GetCellValue("By agency", "A2")
	if err != nil {
		t.Fatal(err)
	}
	if header.GetReadSource() == nil || !strings.Contains(sub, "lag 0 s") {
		t.Errorf("XLSX through the read pool: subtitle %q, read_source %v; want the read pool's note", sub, header.GetReadSource())
	}
}
