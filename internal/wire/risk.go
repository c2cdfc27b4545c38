package wire

import (
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/risk"
)

var riskLevels = map[risk.Level]deskv1.RiskLevel{
	risk.Green: deskv1.RiskLevel_RISK_LEVEL_GREEN,
	risk.Red:   deskv1.RiskLevel_RISK_LEVEL_RED,
}

var inspectionResults = map[string]deskv1.InspectionResult{
	risk.Passed: deskv1.InspectionResult_INSPECTION_RESULT_PASSED,
	risk.Failed: deskv1.InspectionResult_INSPECTION_RESULT_FAILED,
}

// RiskAssessment renders a form's rating.
func RiskAssessment(number string, r risk.Rated) *deskv1.RiskAssessment {
	out := &deskv1.RiskAssessment{FormNumber: number, Level: riskLevels[r.Level], Inspection: inspectionResults[r.Inspection]}
	for _, reason := range r.Reasons {
		out.Reasons = append(out.Reasons, &deskv1.RiskReason{Code: reason.Code, Text: reason.Text})
	}
	for no := range r.Serials {
		out.SerialLines = append(out.SerialLines, int32(no))
	}
	slices.Sort(out.SerialLines)
	return out
}

// InspectionResult maps an API inspection result (ok=false if unspecified or unknown).
func InspectionResult(r deskv1.InspectionResult) (string, bool) {
	for k, v := range inspectionResults {
		if v == r {
			return k, true
		}
	}
	return "", false
}

// Inspection renders an inspection.
func Inspection(i risk.Inspection) *deskv1.Inspection {
	return &deskv1.Inspection{
		InspectionId: i.ID.String(), FormNumber: i.FormNumber, Port: i.Port, Officer: i.Officer,
		Result: inspectionResults[i.Result], Note: i.Note, Rules: i.Rules, InspectedAt: timestamppb.New(i.CreatedAt),
	}
}

// RiskReportRow renders a row of the monthly risk figures.
func RiskReportRow(r risk.ReportRow) *authorityv1.RiskReportRow {
	return &authorityv1.RiskReportRow{StoreCode: r.StoreCode, Rule: r.Rule, FormsFlagged: r.Flagged, Inspections: r.Inspections, Failed: r.Failed}
}
