package wire

import "strings"

// iso3166 are the officially assigned ISO 3166-1 alpha-2 codes (249, as the ISO 3166
// Maintenance Agency's Online Browsing Platform lists them, www.iso.org/obp, "Officially
// assigned"). Reserved, user-assigned (AA, QM–QZ, XA–XZ, ZZ, so also XK), withdrawn (AN,
// CS, SU, YU...) and exceptionally reserved codes (EU, UK, UN...) are not countries of a
// traveller's nationality or document. golang.org/x/text's region table is not used: it
// holds CLDR's regions, which count several of those as countries.
var iso3166 = makeSet(`
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW`)

func makeSet(list string) map[string]bool {
	out := map[string]bool{}
	for _, c := range strings.Fields(list) {
		out[c] = true
	}
	return out
}

// AssignedCountry reports whether c is an officially assigned ISO 3166-1 alpha-2 code.
func AssignedCountry(c string) bool { return iso3166[c] }

// countryCheck describes what is wrong with c as a country code, or "" if nothing.
func countryCheck(c string) string {
	switch {
	case !countryPattern.MatchString(c):
		return "must be an ISO 3166-1 alpha-2 code in capitals, e.g. FR"
	case !iso3166[c]:
		return "is not an assigned ISO 3166-1 alpha-2 country code (" + c + " is reserved, user-assigned or withdrawn)"
	}
	return ""
}
