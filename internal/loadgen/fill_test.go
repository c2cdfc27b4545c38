package loadgen

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"taxrefund/internal/pii"
)

func testKeys(t testing.TB) *pii.Keyring {
	t.Helper()
	k := func(b byte) string {
		return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), 32)))
	}
	kr, err := pii.ParseKeyring([]byte("enc k1 " + k('a') + "\nindex " + k('b') + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func BenchmarkFillGenerate(b *testing.B) {
	g := &filler{r: rand.New(rand.NewPCG(1, 2)), keys: testKeys(b), stores: 500, blocks: map[string]string{}, expense: 1, payable: 2, now: time.Now()}
	g.zipf = rand.NewZipf(g.r, ZipfS, ZipfV, IssueTravellers-1)
	b.ResetTimer()
	for range b.N {
		if _, err := g.generate(1); err != nil {
			b.Fatal(err)
		}
	}
}
