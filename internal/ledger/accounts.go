package ledger

// The accounts of DOMAIN.md §8; A is an agency code.
const (
	RefundExpense = "authority:refund_expense"
	RefundPayable = "travellers:refund_payable"
	Treasury      = "authority:treasury"
)

// AgencyPayable is what the authority owes agency a.
func AgencyPayable(a string) string { return "authority:agency_payable:" + a }

// Receivable is what agency a claims from the authority.
func Receivable(a string) string { return "agency:" + a + ":receivable" }

// Cash is the cash drawer of agency a at a desk.
func Cash(a, desk string) string { return "agency:" + a + ":cash:" + desk }

// Transfers is money agency a paid by bank card or mobile payment.
func Transfers(a string) string { return "agency:" + a + ":transfers" }

// FeeIncome is agency a's fees.
func FeeIncome(a string) string { return "agency:" + a + ":fee_income" }

// Prepayments is agency a's outstanding immediate-refund prepayments.
func Prepayments(a string) string { return "agency:" + a + ":prepayments" }

// CardCaptures is agency a's captured pre-authorizations.
func CardCaptures(a string) string { return "agency:" + a + ":card_captures" }

// Bank is agency a's bank account, where reimbursements arrive.
func Bank(a string) string { return "agency:" + a + ":bank" }
