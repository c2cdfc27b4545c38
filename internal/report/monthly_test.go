package report_test

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/xuri/excelize/v2"

	"taxrefund/internal/money"
	"taxrefund/internal/report"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// seedMonth builds October 2026 with fixed documents, amounts and times (fee 0.02):
//
//	#  store    block nat lines                 A        G      fate
//	0  S-JFB-1  JFB   GB  800.00@13%            800.00   88.00  issued 09-28, paid 10-02 CKG-01 (16.00/72.00)
//	1  S-JFB-1  JFB   GB  1000.00@13%           1000.00 110.00  paid 10-06 CKG-01 with #16 (20.00/90.00)
//	16 S-JFB-2  JFB   GB  400.00@13%            400.00   44.00  same traveller and payout as #1 (8.00/36.00)
//	2  S-JFB-1  JFB   US  500.00@9% + 300@13%   800.00   73.00  paid 10-06 CKG-02 (16.00/57.00)
//	3  S-JFB-2  JFB   JP  2000.00@13%           2000.00 220.00  confirmed at CKG, unpaid
//	9  S-JFB-1  JFB   JP  300.00@13%            300.00   33.00  rejected at CKG (0 units)
//	5  S-CXL-1  CXL   DE  1500.00@13%           1500.00 165.00  paid 10-09 TFU-01 (30.00/135.00)
//	7  S-CXL-2  CXL   US  2 × 400.00@13%        400.00   44.00  1 of 2 units confirmed at TFU, paid TFU-01 (22.00/4.00/18.00)
//	8  -2-3     CXL   FR  700.00@9%             700.00   56.00  paid 10-09 CTU-01 (14.00/42.00)
//	4  S-JFB-2  JFB   GB  600.00@13%            600.00   66.00  voided 10-11
//	12 S-CXL-1  CXL   JP  350.00@13%            350.00   38.50  issued 10-03, expired 2027-01-05
//	13 S-JFB-1  JFB   KR  450.00@9%             450.00   36.00  issued 10-04, expired 2027-01-05
//	6  S-CXL-1  CXL   KR  250.00@13%            250.00   27.50  issued 10-20, still ISSUED
//	11 S-JFB-2  JFB   US  900.00@13%            900.00   99.00  confirmed 10-30 at CKG, paid 11-02 CKG-01
//	15 S-JFB-1  JFB   GB  220.00@13%            220.00   24.20  issued 10-31 23:50 (Shanghai), still ISSUED
//	14 S-JFB-1  JFB   GB  500.00@13%            500.00   55.00  issued 11-01 00:10 (Shanghai): not October's
//
// Store "-2-3" looks like a formula to a spreadsheet; its code is valid for the registry.
func seedMonth(e *env) {
	e.t.Helper()
	if _, err := e.pool.Exec(e.ctx, `
		INSERT INTO stores (code, credit_code, name, block_code, credit_grade, immediate_refund, status) VALUES
			('S-CXL-2', '91510104HN2J1K6FM5', 'Store CXL 2', 'CXL', 'A', false, 'ACTIVE'),
			('-2-3', '91510104HDQAEJXEB6', 'Formula-looking store', 'CXL', 'B', false, 'ACTIVE')`); err != nil {
		e.t.Fatal(err)
	}
	tr := func(doc, nat string) traveller { return traveller{doc: doc, nationality: nat} }
	one := func(amount, vat string) item { return item{qty: 1, amount: amount, vat: vat} }
	t0, tA, tUS1, tJP1, tGB2 := tr("G0000000", "GB"), tr("GA000001", "GB"), tr("US000001", "US"), tr("JP000001", "JP"), tr("GB000002", "GB")
	tDE, tKR1, tUS2, tFR, tJP2 := tr("DE000001", "DE"), tr("KR000001", "KR"), tr("US000002", "US"), tr("FR000001", "FR"), tr("JP000002", "JP")
	tUS3, tJP3, tKR2, tGB3, tGB4 := tr("US000003", "US"), tr("JP000003", "JP"), tr("KR000002", "KR"), tr("GB000003", "GB"), tr("GB000004", "GB")

	e.at(local(2026, 9, 28, 12, 0))
	f0 := e.issue("S-JFB-1", t0, one("800.00", "0.13"))
	e.at(local(2026, 9, 29, 12, 0))
	f0 = e.verify(f0, t0, "CKG", nil)
	e.at(local(2026, 10, 2, 10, 0))
	e.pay("CKG-01", t0, f0)

	e.at(local(2026, 10, 3, 10, 0))
	e.issue("S-CXL-1", tJP3, one("350.00", "0.13"))
	e.at(local(2026, 10, 4, 10, 0))
	e.issue("S-JFB-1", tKR2, one("450.00", "0.09"))

	e.at(local(2026, 10, 5, 10, 0))
	f1 := e.issue("S-JFB-1", tA, one("1000.00", "0.13"))
	f16 := e.issue("S-JFB-2", tA, one("400.00", "0.13"))
	f2 := e.issue("S-JFB-1", tUS1, one("500.00", "0.09"), one("300.00", "0.13"))
	e.at(local(2026, 10, 6, 10, 0))
	f1, f16, f2 = e.verify(f1, tA, "CKG", nil), e.verify(f16, tA, "CKG", nil), e.verify(f2, tUS1, "CKG", nil)
	e.at(local(2026, 10, 6, 11, 0))
	e.pay("CKG-01", tA, f1, f16)
	e.pay("CKG-02", tUS1, f2)

	e.at(local(2026, 10, 8, 10, 0))
	f3 := e.issue("S-JFB-2", tJP1, one("2000.00", "0.13"))
	f9 := e.issue("S-JFB-1", tJP2, one("300.00", "0.13"))
	f5 := e.issue("S-CXL-1", tDE, one("1500.00", "0.13"))
	f7 := e.issue("S-CXL-2", tUS2, item{qty: 2, amount: "400.00", vat: "0.13"})
	f8 := e.issue("-2-3", tFR, one("700.00", "0.09"))
	e.at(local(2026, 10, 9, 10, 0))
	e.verify(f3, tJP1, "CKG", nil)
	e.verify(f9, tJP2, "CKG", map[int]int32{1: 0})
	f5 = e.verify(f5, tDE, "TFU", nil)
	f7 = e.verify(f7, tUS2, "TFU", map[int]int32{1: 1})
	f8 = e.verify(f8, tFR, "CTU", nil)
	e.at(local(2026, 10, 9, 11, 0))
	e.pay("TFU-01", tDE, f5)
	e.pay("TFU-01", tUS2, f7)
	e.pay("CTU-01", tFR, f8)

	e.at(local(2026, 10, 10, 10, 0))
	f4 := e.issue("S-JFB-2", tGB2, one("600.00", "0.13"))
	e.at(local(2026, 10, 11, 10, 0))
	e.void(f4)
	e.at(local(2026, 10, 20, 10, 0))
	e.issue("S-CXL-1", tKR1, one("250.00", "0.13"))
	e.at(local(2026, 10, 29, 10, 0))
	f11 := e.issue("S-JFB-2", tUS3, one("900.00", "0.13"))
	e.at(local(2026, 10, 30, 10, 0))
	f11 = e.verify(f11, tUS3, "CKG", nil)
	e.at(local(2026, 10, 31, 23, 50))
	e.issue("S-JFB-1", tGB3, one("220.00", "0.13"))
	e.at(local(2026, 11, 1, 0, 10))
	e.issue("S-JFB-1", tGB4, one("500.00", "0.13"))
	e.at(local(2026, 11, 2, 10, 0))
	e.pay("CKG-01", tUS3, f11)

	// #12 (deadline 2027-01-01) and #13 (2027-01-02) expire; #6 (2027-01-18), #15
	// (2027-01-29) and #14 do not.
	e.at(local(2027, 1, 5, 10, 0))
	n, err := e.forms.Expire(e.ctx, "expiry job")
	if err != nil || n != 2 {
		e.t.Fatalf("expire: %d, %v; want 2 forms", n, err)
	}
}

// figures renders a row's figures in export order.
func figures(r report.Row) string {
	return fmt.Sprintf("issued=%d eligible=%s gross=%s voided=%d expired=%d paid=%d paid_gross=%s paid_fee=%s paid_net=%s outstanding=%d outstanding_gross=%s",
		r.FormsIssued, money.Format(r.Eligible), money.Format(r.Gross), r.FormsVoided, r.FormsExpired, r.FormsPaid,
		money.Format(r.PaidGross), money.Format(r.PaidFee), money.Format(r.PaidNet), r.FormsOutstanding, money.Format(r.OutstandingGross))
}

func TestMonthlyReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedMonth(e)
	rows, err := report.Monthly(e.ctx, e.pool, october)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]report.Row{}
	var order []string
	for _, r := range rows {
		k := r.Dimension + "/" + r.Key
		if _, dup := byKey[k]; dup {
			t.Errorf("row %s appears twice", k)
		}
		byKey[k] = r
		order = append(order, k)
	}
	// Worked out by hand from seedMonth's table.
	want := map[string]string{
		// #1 #16 #2 #3 #9 #4 #13 #11 #15; paid in October: #0, #1, #16, #2.
		"block/JFB": "issued=9 eligible=6670.00 gross=705.20 voided=1 expired=1 paid=4 paid_gross=315.00 paid_fee=60.00 paid_net=255.00 outstanding=2 outstanding_gross=244.20",
		// #5 #7 #8 #12 #6; paid: #5, #7 (its confirmed half), #8.
		"block/CXL": "issued=5 eligible=3200.00 gross=331.00 voided=0 expired=1 paid=3 paid_gross=243.00 paid_fee=48.00 paid_net=195.00 outstanding=1 outstanding_gross=27.50",
		// Not confirmed anywhere: #4, #6, #12, #13, #15.
		"port/": "issued=5 eligible=1870.00 gross=192.20 voided=1 expired=2 paid=0 paid_gross=0.00 paid_fee=0.00 paid_net=0.00 outstanding=2 outstanding_gross=51.70",
		// Confirmed at CKG: #1 #16 #2 #3 #9 #11; paid at CKG in October: #0 #1 #16 #2.
		"port/CKG":     "issued=6 eligible=5400.00 gross=579.00 voided=0 expired=0 paid=4 paid_gross=315.00 paid_fee=60.00 paid_net=255.00 outstanding=1 outstanding_gross=220.00",
		"agency/AG-CD": "issued=3 eligible=2600.00 gross=265.00 voided=0 expired=0 paid=3 paid_gross=243.00 paid_fee=48.00 paid_net=195.00 outstanding=0 outstanding_gross=0.00",
		// #11 was paid in November: an October issue of AG-CQ, not an October payment.
		"agency/AG-CQ":   "issued=4 eligible=3100.00 gross=326.00 voided=0 expired=0 paid=4 paid_gross=315.00 paid_fee=60.00 paid_net=255.00 outstanding=0 outstanding_gross=0.00",
		"nationality/US": "issued=3 eligible=2100.00 gross=216.00 voided=0 expired=0 paid=2 paid_gross=95.00 paid_fee=20.00 paid_net=75.00 outstanding=0 outstanding_gross=0.00",
		"store/-2-3":     "issued=1 eligible=700.00 gross=56.00 voided=0 expired=0 paid=1 paid_gross=56.00 paid_fee=14.00 paid_net=42.00 outstanding=0 outstanding_gross=0.00",
	}
	for k, w := range want {
		r, ok := byKey[k]
		if !ok {
			t.Errorf("no row %s", k)
			continue
		}
		if got := figures(r); got != w {
			t.Errorf("%s:\n\tgot  %s\n\twant %s", k, got, w)
		}
	}
	wantOrder := "block/CXL block/JFB store/-2-3 store/S-CXL-1 store/S-CXL-2 store/S-JFB-1 store/S-JFB-2 port/ port/CKG port/CTU port/TFU " +
		"agency/ agency/AG-CD agency/AG-CQ nationality/DE nationality/FR nationality/GB nationality/JP nationality/KR nationality/US"
	if got := strings.Join(order, " "); got != wantOrder {
		t.Errorf("rows:\n\tgot  %s\n\twant %s", got, wantOrder)
	}
	// Every dimension counts the same 14 October forms and the same October payments.
	for _, dim := range report.Dimensions {
		var issued, paid int64
		for _, r := range rows {
			if r.Dimension == dim {
				issued += r.FormsIssued
				paid += r.FormsPaid
			}
		}
		if issued != 14 || paid != 7 {
			t.Errorf("dimension %s: %d forms issued, %d paid; want 14 and 7", dim, issued, paid)
		}
	}

	csvData, err := report.CSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report-2026-10.csv", csvData)
	// The formula-looking store code is neutralized, everything else is verbatim.
	recs, err := csv.NewReader(bytes.NewReader(csvData)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(report.Columns, ",") {
		t.Errorf("header %v", recs[0])
	}
	var keys []string
	for _, r := range recs[1:] {
		if r[0] == "store" {
			keys = append(keys, r[1])
		}
	}
	if fmt.Sprint(keys) != "['-2-3 S-CXL-1 S-CXL-2 S-JFB-1 S-JFB-2]" {
		t.Errorf("store keys in the CSV: %q", keys)
	}

	xlsx, err := report.XLSX(october, rows, sheetMeta)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report-2026-10.xlsx.txt", dumpXLSX(t, xlsx))
	if name := report.FileName(october, "xlsx"); name != "taxrefund-report-2026-10.xlsx" {
		t.Errorf("file name %s", name)
	}
}

// dumpXLSX renders a workbook's cell values as text: for each sheet, each row's cells,
// as excelize reads them back, and the raw (unformatted) value where it differs.
func dumpXLSX(t *testing.T, data []byte) []byte {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for _, sheet := range f.GetSheetList() {
		fmt.Fprintf(&b, "== %s\n", sheet)
		shown, err := f.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := f.GetRows(sheet, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range shown {
			cells := make([]string, len(row))
			for j, c := range row {
				cells[j] = fmt.Sprintf("%q", c)
				if i < len(raw) && j < len(raw[i]) && raw[i][j] != c {
					cells[j] += fmt.Sprintf(" (raw %q)", raw[i][j])
				}
			}
			b.WriteString(strings.Join(cells, "\t") + "\n")
		}
	}
	return []byte(b.String())
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestExportCells checks the exports cell by cell on rows written out here: money with
// exactly two decimals (never through a float, even beyond float64's 15-16 digits),
// counts as integers, numbers as numeric XLSX cells, and every formula-looking key
// neutralized in the CSV.
func TestExportCells(t *testing.T) {
	t.Parallel()
	d := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	rows := []report.Row{
		{Dimension: "store", Key: "S-1", FormsIssued: 3, Eligible: d("1234.5"), Gross: d("135.8"), FormsVoided: 1, FormsExpired: 0,
			FormsPaid: 2, PaidGross: d("99"), PaidFee: d("18.00"), PaidNet: d("81"), FormsOutstanding: 1, OutstandingGross: d("0.1")},
		{Dimension: "store", Key: "S-BIG", FormsIssued: 1, Eligible: d("999999999999.99"), Gross: d("109999999999.99"),
			PaidGross: d("0"), PaidFee: d("0"), PaidNet: d("0"), OutstandingGross: d("109999999999.99")},
	}
	for _, k := range []string{"=SUM(A1:A9)", "+1", "-2-3", "@cmd", "\tx", "\rx"} {
		rows = append(rows, report.Row{Dimension: "store", Key: k, FormsIssued: 1})
	}
	data, err := report.CSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		report.Columns,
		{"store", "S-1", "3", "1234.50", "135.80", "1", "0", "2", "99.00", "18.00", "81.00", "1", "0.10"},
		{"store", "S-BIG", "1", "999999999999.99", "109999999999.99", "0", "0", "0", "0.00", "0.00", "0.00", "0", "109999999999.99"},
		{"store", "'=SUM(A1:A9)", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
		{"store", "'+1", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
		{"store", "'-2-3", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
		{"store", "'@cmd", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
		{"store", "'\tx", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
		{"store", "'\rx", "1", "0.00", "0.00", "0", "0", "0", "0.00", "0.00", "0.00", "0", "0.00"},
	}
	for i, w := range want {
		if i >= len(recs) || fmt.Sprintf("%q", recs[i]) != fmt.Sprintf("%q", w) {
			var got []string
			if i < len(recs) {
				got = recs[i]
			}
			t.Errorf("CSV record %d:\n\tgot  %q\n\twant %q", i, got, w)
		}
	}
	if len(recs) != len(want) {
		t.Errorf("%d CSV records, want %d", len(recs), len(want))
	}

	xlsx, err := report.XLSX(october, rows[:2], sheetMeta)
	if err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(xlsx))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := f.GetRows("By store", excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	// Rows 5 and 6 are the stores, row 7 their totals, summed as decimals.
	wantRaw := [][]string{
		{"S-1", "3", "1234.50", "135.80", "1", "0", "2", "99.00", "18.00", "81.00", "1", "0.10"},
		{"S-BIG", "1", "999999999999.99", "109999999999.99", "0", "0", "0", "0.00", "0.00", "0.00", "0", "109999999999.99"},
		{"合计 Total", "4", "1000000001234.49", "110000000135.79", "1", "0", "2", "99.00", "18.00", "81.00", "1", "110000000000.09"},
	}
	if len(raw) < 7 || fmt.Sprintf("%q", raw[4:7]) != fmt.Sprintf("%q", wantRaw) {
		t.Errorf("XLSX raw values:\n\tgot  %q\n\twant %q", raw, wantRaw)
	}
	for _, cell := range []string{"B5", "C5", "D5", "L5", "C6", "C7"} {
		typ, err := f.GetCellType("By store", cell)
		if err != nil || (typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset) {
			t.Errorf("cell %s has type %v (%v), want a number", cell, typ, err)
		}
	}
	if typ, _ := f.GetCellType("By store", "A5"); typ != excelize.CellTypeInlineString && typ != excelize.CellTypeSharedString {
		t.Errorf("key cell A5 has type %v, want a string", typ)
	}
	// What an official prints: the title names the month and the office, the headers are
	// Chinese over English, amounts show as CNY with separators, the header is frozen.
	for cell, want := range map[string]string{
		"A1": "离境退税月度报表（按退税商店）2026-10 · Departure tax refund monthly report by store, 2026-10",
		"A2": "填报机关 Issuing office: sat-demo　单位：人民币元 Unit: CNY　生成时间 Generated: 2026-11-02 09:30:00 (Asia/Shanghai)",
		"C3": "退税物品金额", "C4": "Eligible amount", "C5": "1,234.50", "C6": "999,999,999,999.99",
		"A9": "账簿哈希链头 Journal chain head: seal 42, SHA-256 " + sheetMeta.ChainHash,
	} {
		if got, _ := f.GetCellValue("By store", cell); got != want {
			t.Errorf("By store %s reads %q, want %q", cell, got, want)
		}
	}
	panes, err := f.GetPanes("By store")
	if err != nil || !panes.Freeze || panes.YSplit != 4 || panes.XSplit != 1 {
		t.Errorf("panes %+v (%v): want the four title and header rows and the key column frozen", panes, err)
	}
	if w, _ := f.GetColWidth("By store", "C"); w < 15 {
		t.Errorf("amount column width %v: too narrow for 999,999,999,999.99", w)
	}
	props, err := f.GetDocProps()
	if err != nil || !strings.HasPrefix(props.Created, "2026-11-02T01:30:00") {
		t.Errorf("document created %q (%v), want the generation time", props.Created, err)
	}
	if sheets := fmt.Sprint(f.GetSheetList()); sheets != "[By block By store By port By agency By nationality]" {
		t.Errorf("sheets %s", sheets)
	}
}

// TestXLSXKeepsFormulaLookingKeysVerbatim: an XLSX string cell is never evaluated as a
// formula, so the key needs no neutralizing there; prefixing "'" (as the CSV must) makes
// the workbook show a store code, "'-2-3", that does not exist.
func TestXLSXKeepsFormulaLookingKeysVerbatim(t *testing.T) {
	t.Parallel()
	rows := []report.Row{{Dimension: "store", Key: "-2-3", FormsIssued: 1}}
	data, err := report.XLSX(october, rows, sheetMeta)
	if err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.GetCellValue("By store", "A5")
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := f.GetCellType("By store", "A5"); typ != excelize.CellTypeInlineString && typ != excelize.CellTypeSharedString {
		t.Fatalf("key cell has type %v, want a string cell", typ)
	}
	if v != "-2-3" {
		t.Errorf("store key in the XLSX reads %q, want %q (a string cell, not a formula)", v, "-2-3")
	}
}

// sheetMeta is a workbook's heading as the export of 2026-11-02 09:30 in Asia/Shanghai by
// office sat-demo makes it.
var sheetMeta = report.Sheet{Office: "sat-demo", Generated: time.Date(2026, 11, 2, 1, 30, 0, 0, time.UTC), ChainSeq: 42,
	ChainHash: "5d41402abc4b2a76b9719d911017c592aa9b8f7e0c1d2e3f405162738495a6b7"}
