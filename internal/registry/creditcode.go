package registry

// creditAlphabet is the character set of unified social credit codes (GB 32100-2015):
// digits and upper-case letters without I, O, S, V and Z. A character's value is its index.
const creditAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// creditWeights are 3^i mod 31 for positions 1 to 17.
var creditWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// ValidCreditCode reports whether s is an 18-character unified social credit code
// (统一社会信用代码) whose last character is the GB 32100-2015 check character:
// 31 − (Σ value(cᵢ) × wᵢ mod 31), with 31 written as 0.
func ValidCreditCode(s string) bool {
	if len(s) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := indexOf(s[i])
		if v < 0 {
			return false
		}
		sum += v * creditWeights[i]
	}
	check := 31 - sum%31
	if check == 31 {
		check = 0
	}
	return indexOf(s[17]) == check
}

func indexOf(c byte) int {
	for i := 0; i < len(creditAlphabet); i++ {
		if creditAlphabet[i] == c {
			return i
		}
	}
	return -1
}
