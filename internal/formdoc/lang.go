package formdoc

import "strings"

// Lang is a language the printed form speaks, as a BCP 47 tag.
type Lang string

// The languages of the form: Chinese and English always, and one of the others for the
// traveller.
const (
	Chinese  Lang = "zh"
	English  Lang = "en"
	Japanese Lang = "ja"
	Korean   Lang = "ko"
	Russian  Lang = "ru"
	French   Lang = "fr"
	German   Lang = "de"
	Spanish  Lang = "es"
	Arabic   Lang = "ar"
)

// Extra are the languages a form may carry besides Chinese and English.
var Extra = []Lang{Japanese, Korean, Russian, French, German, Spanish, Arabic}

// ParseLang returns the language of tag ("" when the tag names none the form speaks).
// Only the primary subtag counts: "fr-CA" is French.
func ParseLang(tag string) (Lang, bool) {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
	switch l := Lang(primary); l {
	case Chinese, English, Japanese, Korean, Russian, French, German, Spanish, Arabic:
		return l, true
	}
	return "", false
}

// byNationality is the traveller's language by nationality (ISO 3166-1 alpha-2), for the
// countries whose official language is one of Extra.
var byNationality = map[string]Lang{
	"JP": Japanese, "KR": Korean,
	"RU": Russian, "BY": Russian, "KZ": Russian, "KG": Russian,
	"FR": French, "MC": French, "LU": French, "SN": French, "CI": French,
	"DE": German, "AT": German, "LI": German,
	"ES": Spanish, "MX": Spanish, "AR": Spanish, "CO": Spanish, "CL": Spanish, "PE": Spanish,
	"VE": Spanish, "EC": Spanish, "GT": Spanish, "CU": Spanish, "BO": Spanish, "DO": Spanish,
	"HN": Spanish, "PY": Spanish, "SV": Spanish, "NI": Spanish, "CR": Spanish, "PA": Spanish, "UY": Spanish,
	"SA": Arabic, "AE": Arabic, "EG": Arabic, "QA": Arabic, "KW": Arabic, "BH": Arabic, "OM": Arabic,
	"JO": Arabic, "LB": Arabic, "IQ": Arabic, "SY": Arabic, "YE": Arabic, "LY": Arabic, "MA": Arabic,
	"DZ": Arabic, "TN": Arabic, "SD": Arabic,
}

// Languages returns the form's languages: Chinese, English and the requested language
// when it is one of Extra, otherwise the language of the traveller's nationality when it
// is one.
func Languages(nationality string, requested Lang) []Lang {
	out := []Lang{Chinese, English}
	third := requested
	if third == "" || third == Chinese || third == English {
		third = byNationality[strings.ToUpper(nationality)]
	}
	if third != "" && third != Chinese && third != English {
		out = append(out, third)
	}
	return out
}
