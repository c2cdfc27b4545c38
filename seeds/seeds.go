// Package seeds holds the idempotent demo data that `make run` loads.
package seeds

import _ "embed"

// Demo is the demo data as SQL; every statement is ON CONFLICT DO NOTHING.
//
//go:embed demo.sql
var Demo string

// Risk is the risk rules' suggested thresholds (DEMO VALUES), loaded only on request
// (`taxrefund seed -risk-rules`); ON CONFLICT DO NOTHING.
//
//go:embed risk.sql
var Risk string
