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

// neutralize keeps a key that starts like a formula (=, +, -, @) from running as one when
// the file is opened in a spreadsheet.
func neutralize(cells []string) []string {
	if k := cells[1]; k != "" && strings.ContainsRune("=+-@\t\r", rune(k[0])) {
		cells[1] = "'" + k
	}
	return cells
}

// XLSX renders the report as a workbook: one sheet per dimension, a header row, amounts
// as numbers with two decimals. Amounts are written as the exact decimal text of the
// number, never through a float.
func XLSX(month time.Time, rows []Row) ([]byte, error) {
	f := excelize.NewFile()
	defer f.Close()
	moneyStyle, err := f.NewStyle(&excelize.Style{NumFmt: 4}) // #,##0.00
	if err != nil {
		return nil, err
	}
	header, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	if err != nil {
		return nil, err
	}
	byDim := map[string][]Row{}
	for _, r := range rows {
		byDim[r.Dimension] = append(byDim[r.Dimension], r)
	}
	for i, dim := range Dimensions {
		sheet := "By " + dim
		if i == 0 {
			if err := f.SetSheetName("Sheet1", sheet); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(sheet); err != nil {
			return nil, err
		}
		title := []string{dim}
		title = append(title, Columns[2:]...)
		for c, h := range title {
			cell, _ := excelize.CoordinatesToCellName(c+1, 1)
			if err := f.SetCellStr(sheet, cell, h); err != nil {
				return nil, err
			}
		}
		if err := f.SetRowStyle(sheet, 1, 1, header); err != nil {
			return nil, err
		}
		for n, r := range byDim[dim] {
			cells := r.cells()[1:] // string cells: a formula-looking key stays text
			for c, v := range cells {
				cell, _ := excelize.CoordinatesToCellName(c+1, n+2)
				if c == 0 {
					err = f.SetCellStr(sheet, cell, v)
				} else {
					err = f.SetCellDefault(sheet, cell, v) // a number, from its exact text
				}
				if err != nil {
					return nil, err
				}
			}
		}
		for _, col := range []string{"C", "D", "H", "I", "J", "L"} {
			if err := f.SetColStyle(sheet, col, moneyStyle); err != nil {
				return nil, err
			}
		}
	}
	if err := f.SetDocProps(&excelize.DocProperties{Title: "taxrefund monthly report " + month.Format("2006-01"), Creator: "taxrefund"}); err != nil {
		return nil, err
	}
	buf, err := f.WriteToBuffer()
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
