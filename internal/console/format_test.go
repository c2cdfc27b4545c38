package console

import (
	"io/fs"
	"regexp"
	"taxrefund/internal/risk"
	"testing"
)

func TestCNY(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0.00", "0.5": "0.50", "999": "999.00", "1000": "1,000.00", "1234567.8": "1,234,567.80",
		"20000.00": "20,000.00", "999999999999.99": "999,999,999,999.99", "-1234.5": "-1,234.50", "": "—", "abc": "—",
	} {
		if got := cny(in); got != want {
			t.Errorf("cny(%q) = %q, want %q", in, got, want)
		}
	}
	if got := pct("0.13"); got != "13%" {
		t.Errorf("pct(0.13) = %q", got)
	}
}

func TestPickLang(t *testing.T) {
	for in, want := range map[string]string{
		"zh-CN,zh;q=0.9,en;q=0.8": langZH, "zh": langZH, "zh-Hans-CN": langZH, "en;q=0.5, zh;q=0.9": langZH,
		"en-US,en;q=0.9": langEN, "fr-FR": langEN, "": langEN, "de, en;q=0.1": langEN,
	} {
		if got := pickLang(in); got != want {
			t.Errorf("pickLang(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEveryTextHasBothLanguages: no text is missing its Chinese or its English.
func TestEveryTextHasBothLanguages(t *testing.T) {
	for k, v := range texts {
		if v[0] == "" || v[1] == "" {
			t.Errorf("text %q: %q", k, v)
		}
	}
}

// TestTemplatesUseKnownTexts: every text a template names literally exists (a missing one
// would show its key on the page).
func TestTemplatesUseKnownTexts(t *testing.T) {
	used := regexp.MustCompile(`\.T "([^"]+)"`)
	n := 0
	err := fs.WalkDir(web, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !regexp.MustCompile(`\.html$`).MatchString(path) {
			return err
		}
		b, err := fs.ReadFile(web, path)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			n++
			if _, ok := texts[m[1]]; !ok {
				t.Errorf("%s uses text %q, which has none", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("only %d texts found in the templates: the pattern is wrong", n)
	}
}

// TestEveryRiskRuleHasAName: the customs page names each risk rule in the page's
// language (riskrule.<code>).
func TestEveryRiskRuleHasAName(t *testing.T) {
	for _, r := range risk.Rules {
		if _, ok := texts["riskrule."+r]; !ok {
			t.Errorf("risk rule %q has no riskrule text", r)
		}
	}
}
