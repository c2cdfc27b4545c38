package loadgen

import (
	"fmt"
	"regexp"
	"testing"
)

func TestCreditCode(t *testing.T) {
	// The example of GB 32100-2015's check character, widely quoted with its check digits.
	if got := creditCheck("91350100M000100Y4"); got != '3' {
		t.Errorf("check of 91350100M000100Y4 = %c, want 3", got)
	}
	// GB 11714's example organization code D2143569-X: 3·13+7·2+9·1+10·4+5·3+8·5+4·6+2·9 =
	// 199, 11 − 199 mod 11 = 10, written X.
	if got := orgCheck("D2143569"); got != 'X' {
		t.Errorf("check of D2143569 = %c, want X", got)
	}
	valid := regexp.MustCompile(`^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$`)
	seen := map[string]bool{}
	for i := 1; i <= 500; i++ {
		c := CreditCode("500103", fmt.Sprintf("MB%06d", i))
		if len(c) != 18 || !valid.MatchString(c) {
			t.Fatalf("credit code %q is not 18 characters of the GB 32100 alphabet", c)
		}
		if creditCheck(c[:17]) != c[17] {
			t.Fatalf("credit code %q: bad check character", c)
		}
		if seen[c] {
			t.Fatalf("credit code %q issued twice", c)
		}
		seen[c] = true
	}
}
