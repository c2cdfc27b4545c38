package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"taxrefund/internal/money"
)

// Columns are the export's columns, in order.
var Columns = []string{
	"dimension", "key", "forms_issued", "eligible_amount", "gross_refund", "forms_voided", "forms_expired",
	"forms_paid", "paid_gross", "paid_fee", "paid_net", "forms_outstanding", "outstanding_gross",
}

// cells renders a row; money keeps exactly two fraction digits.
func (r Row) cells() []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return []string{
		r.Dimension, r.Key, i(r.FormsIssued), money.Format(r.Eligible), money.Format(r.Gross), i(r.FormsVoided), i(r.FormsExpired),
		i(r.FormsPaid), money.Format(r.PaidGross), money.Format(r.PaidFee), money.Format(r.PaidNet), i(r.FormsOutstanding), money.Format(r.OutstandingGross),
	}
}

// FileName is the export's file name, e.g. "taxrefund-report-2026-10.xlsx".
func FileName(month time.Time, ext string) string {
	return fmt.Sprintf("taxrefund-report-%s.%s", month.Format("2006-01"), ext)
}

// CSV renders the report as RFC 4180 CSV with a header row.
func CSV(rows []Row) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(Columns); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := w.Write(neutralize(r.cells())); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// AppendNote ends a CSV export with a record holding note in its first column and the
// others empty (a reader that wants every record as wide as the header gets one), e.g.
// where the figures were read.
func AppendNote(data []byte, note string) ([]byte, error) {
	buf := bytes.NewBuffer(data)
	w := csv.NewWriter(buf)
	rec := make([]string, len(Columns))
	rec[0] = note
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// neutralize keeps a key that starts like a formula (=, +, -, @) from running as one when
// the file is opened in a spreadsheet.
func neutralize(cells []string) []string {
	if k := cells[1]; k != "" && strings.ContainsRune("=+-@\t\r", rune(k[0])) {
		cells[1] = "'" + k
	}
	return cells
}

// Sheet is what the workbook says of itself beyond the figures.
type Sheet struct {
	// Office is the issuing tax office (the official's party code).
	Office string
	// Generated is when the workbook was made; shown in Asia/Shanghai.
	Generated time.Time
	// ChainSeq and ChainHash are the journal's hash chain head the figures commit to
	// (ChainSeq 0: nothing sealed yet).
	ChainSeq  int64
	ChainHash string
	// Note, when set, follows the subtitle of every sheet: where the figures were read
	// (db.ReplicaNote, "read from replica, lag N s").
	Note string
}

// Headers of the workbook's columns after the key, in Chinese and in English.
var (
	headersZH = []string{"开具单数", "退税物品金额", "应退税额", "作废单数", "过期单数", "已退税单数", "已退税额", "代理手续费", "实退金额", "未结单数", "未结应退税额"}
	headersEN = []string{"Forms issued", "Eligible amount", "Gross refund", "Forms voided", "Forms expired", "Forms paid", "Paid gross", "Paid fee", "Paid net", "Forms outstanding", "Outstanding gross"}
	dimZH     = map[string]string{"block": "街区", "store": "退税商店", "port": "离境口岸", "agency": "退税代理机构", "nationality": "国籍"}
	dimEN     = map[string]string{"block": "Block", "store": "Store", "port": "Port of exit", "agency": "Agency", "nationality": "Nationality"}
	// moneyCols are the amount columns (1-based, after the key in column 1).
	moneyCols = map[int]bool{3: true, 4: true, 8: true, 9: true, 10: true, 12: true}
)

// XLSX renders the report as a workbook an official can print and sign: one sheet per
// dimension, each with a title naming the month and the issuing office, the unit and the
// generation time (Asia/Shanghai), Chinese headers with an English row under them, the
// rows, a totals row and the journal's chain head; amounts as numbers in a CNY format
// with two decimals and thousands separators, written from their exact decimal text (never
// through a float); the header frozen; widths that fit. A port or agency key is empty for
// forms not yet confirmed or paid: the sheet says so.
func XLSX(month time.Time, rows []Row, meta Sheet) ([]byte, error) {
	f := excelize.NewFile()
	defer f.Close()
	moneyFmt := "#,##0.00"
	moneyStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: &moneyFmt})
	if err != nil {
		return nil, err
	}
	countStyle, err := f.NewStyle(&excelize.Style{NumFmt: 3}) // #,##0
	if err != nil {
		return nil, err
	}
	titleStyle, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true, Size: 14}})
	if err != nil {
		return nil, err
	}
	border := []excelize.Border{{Type: "bottom", Color: "808080", Style: 1}}
	header, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Alignment: &excelize.Alignment{WrapText: true, Vertical: "center"}})
	if err != nil {
		return nil, err
	}
	headerEN, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Italic: true, Color: "555555"}, Alignment: &excelize.Alignment{WrapText: true}, Border: border})
	if err != nil {
		return nil, err
	}
	totalMoney, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, CustomNumFmt: &moneyFmt, Border: []excelize.Border{{Type: "top", Color: "000000", Style: 1}}})
	if err != nil {
		return nil, err
	}
	totalCount, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, NumFmt: 3, Border: []excelize.Border{{Type: "top", Color: "000000", Style: 1}}})
	if err != nil {
		return nil, err
	}
	byDim := map[string][]Row{}
	for _, r := range rows {
		byDim[r.Dimension] = append(byDim[r.Dimension], r)
	}
	generated := meta.Generated.In(shanghai).Format("2006-01-02 15:04:05")
	const firstRow = 5 // title, subtitle, Chinese header, English header
	for i, dim := range Dimensions {
		sheet := "By " + dim
		if i == 0 {
			if err := f.SetSheetName("Sheet1", sheet); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(sheet); err != nil {
			return nil, err
		}
		set := func(col, row int, v string, numeric bool) error {
			cell, _ := excelize.CoordinatesToCellName(col, row)
			if numeric {
				return f.SetCellDefault(sheet, cell, v) // a number, from its exact text
			}
			return f.SetCellStr(sheet, cell, v)
		}
		title := fmt.Sprintf("离境退税月度报表（按%s）%s · Departure tax refund monthly report by %s, %s", dimZH[dim], month.Format("2006-01"), strings.ToLower(dimEN[dim]), month.Format("2006-01"))
		sub := fmt.Sprintf("填报机关 Issuing office: %s　单位：人民币元 Unit: CNY　生成时间 Generated: %s (Asia/Shanghai)", meta.Office, generated)
		if err := set(1, 1, title, false); err != nil {
			return nil, err
		}
		if meta.Note != "" {
			sub += "　" + meta.Note
		}
		if err := set(1, 2, sub, false); err != nil {
			return nil, err
		}
		if err := f.SetCellStyle(sheet, "A1", "A1", titleStyle); err != nil {
			return nil, err
		}
		zh := append([]string{dimZH[dim]}, headersZH...)
		en := append([]string{dimEN[dim]}, headersEN...)
		for c := range zh {
			if err := set(c+1, 3, zh[c], false); err != nil {
				return nil, err
			}
			if err := set(c+1, 4, en[c], false); err != nil {
				return nil, err
			}
		}
		if err := f.SetRowStyle(sheet, 3, 3, header); err != nil {
			return nil, err
		}
		if err := f.SetRowStyle(sheet, 4, 4, headerEN); err != nil {
			return nil, err
		}
		var total Row
		n := firstRow
		for _, r := range byDim[dim] {
			cells := r.cells()[1:] // the key stays a string cell: a formula-looking key is text
			if cells[0] == "" {
				cells[0] = emptyKey(dim)
			}
			for c, v := range cells {
				if err := set(c+1, n, v, c > 0); err != nil {
					return nil, err
				}
			}
			total = total.plus(r)
			n++
		}
		last := n - 1
		total.Key = "合计 Total"
		for c, v := range total.cells()[1:] {
			if err := set(c+1, n, v, c > 0); err != nil {
				return nil, err
			}
		}
		for c := 2; c <= len(zh); c++ {
			col, _ := excelize.ColumnNumberToName(c)
			style, tstyle := countStyle, totalCount
			if moneyCols[c] {
				style, tstyle = moneyStyle, totalMoney
			}
			if last >= firstRow {
				if err := f.SetCellStyle(sheet, fmt.Sprintf("%s%d", col, firstRow), fmt.Sprintf("%s%d", col, last), style); err != nil {
					return nil, err
				}
			}
			if err := f.SetCellStyle(sheet, fmt.Sprintf("%s%d", col, n), fmt.Sprintf("%s%d", col, n), tstyle); err != nil {
				return nil, err
			}
			width := 13.0
			if moneyCols[c] {
				width = 17
			}
			if err := f.SetColWidth(sheet, col, col, width); err != nil {
				return nil, err
			}
		}
		if err := f.SetCellStyle(sheet, fmt.Sprintf("A%d", n), fmt.Sprintf("A%d", n), totalCount); err != nil {
			return nil, err
		}
		if err := f.SetColWidth(sheet, "A", "A", 24); err != nil {
			return nil, err
		}
		if err := f.SetRowHeight(sheet, 3, 30); err != nil {
			return nil, err
		}
		chain := "账簿哈希链头 Journal chain head: nothing sealed yet"
		if meta.ChainSeq > 0 {
			chain = fmt.Sprintf("账簿哈希链头 Journal chain head: seal %d, SHA-256 %s", meta.ChainSeq, meta.ChainHash)
		}
		if err := set(1, n+2, chain, false); err != nil {
			return nil, err
		}
		if err := set(1, n+3, "审核人签字 Signed: ____________________　日期 Date: ____________", false); err != nil {
			return nil, err
		}
		// The title and header rows and the key column stay in view.
		if err := f.SetPanes(sheet, &excelize.Panes{Freeze: true, XSplit: 1, YSplit: firstRow - 1, TopLeftCell: fmt.Sprintf("B%d", firstRow), ActivePane: "bottomRight"}); err != nil {
			return nil, err
		}
		if err := f.SetPageLayout(sheet, &excelize.PageLayoutOptions{Orientation: ptr("landscape"), FitToWidth: ptr(1)}); err != nil {
			return nil, err
		}
	}
	created := meta.Generated.UTC().Format(time.RFC3339)
	if err := f.SetDocProps(&excelize.DocProperties{Title: "taxrefund monthly report " + month.Format("2006-01"), Creator: "taxrefund " + meta.Office,
		Created: created, Modified: created}); err != nil {
		return nil, err
	}
	buf, err := f.WriteToBuffer()
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }

// shanghai is China Standard Time (no daylight saving time since 1991).
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// emptyKey names the rows of forms that have no port or agency yet.
func emptyKey(dim string) string {
	switch dim {
	case "port":
		return "（未验核）not yet confirmed"
	case "agency":
		return "（未退税）not yet paid"
	}
	return "（未知）unknown"
}

// plus adds r's figures to t.
func (t Row) plus(r Row) Row {
	t.FormsIssued += r.FormsIssued
	t.Eligible = t.Eligible.Add(r.Eligible)
	t.Gross = t.Gross.Add(r.Gross)
	t.FormsVoided += r.FormsVoided
	t.FormsExpired += r.FormsExpired
	t.FormsPaid += r.FormsPaid
	t.PaidGross = t.PaidGross.Add(r.PaidGross)
	t.PaidFee = t.PaidFee.Add(r.PaidFee)
	t.PaidNet = t.PaidNet.Add(r.PaidNet)
	t.FormsOutstanding += r.FormsOutstanding
	t.OutstandingGross = t.OutstandingGross.Add(r.OutstandingGross)
	return t
}
