package seed

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// bytes16 is 16 pseudo-random bytes for (a, b): the material of the
// skewed generator's ids and tokens.
func bytes16(a, b uint64) [16]byte {
	var out [16]byte
	binary.BigEndian.PutUint64(out[:8], mix(a*0x9e3779b97f4a7c15^b))
	binary.BigEndian.PutUint64(out[8:], mix(b*0xbf58476d1ce4e5b9^a^0x94d049bb133111eb))
	return out
}

// skewedUserID: a UUID for most users, a decimal legacy id for one in five
// (digits sort before letters in byte order, and "10" before "9"). Orphan
// devices' owners (i >= Users) get ids of the same shapes.
func (g *gen) skewedUserID(i int) string {
	b := bytes16(uint64(g.cfg.Seed)+101, uint64(i))
	if b[15]%5 == 0 {
		return strconv.FormatUint(uint64(i)*7+uint64(b[14]%7), 10)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// skewedDeviceID: 22 characters of base64url, '-' and '_' included (a
// locale's collation ignores them, byte order does not).
func (g *gen) skewedDeviceID(i, k int) string {
	b := bytes16(uint64(g.cfg.Seed)+103, uint64(i)<<8|uint64(k))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (g *gen) skewedUser(w *bufio.Writer, i int) int {
	r := g.rng(streamUser, i)
	field(w, g.skewedUserID(i))
	tab(w)
	fieldOrNull(w, "member:"+strconv.FormatUint(uint64(i), 36), r.Float64() >= 0.01)
	tab(w)
	email, ok := g.email(r, i)
	fieldOrNull(w, email, ok && r.Float64() >= 0.2)
	tab(w)
	phone, ok := phone(r, i)
	fieldOrNull(w, phone, ok && r.Float64() >= 0.3)
	tab(w)
	field(w, g.skewedProperties(r, i))
	tab(w)
	w.WriteString(strconv.Itoa(r.IntN(10000)))
	end(w)
	return 1
}

var (
	languages = []string{"ko", "en", "ja", "ko-KR", "zh-Hant", ""}
	timeZones = []string{"Asia/Seoul", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Not/AZone"}
	words     = strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike 가나다 라마바 \"quoted\" back\\slash")
)

// skewedProperties: a third empty, a quarter with one key, a third with a
// handful, the rest wide (30 to 80 keys, nested values, long strings; the
// widest over 3 KB, which PostgreSQL stores compressed).
func (g *gen) skewedProperties(r *rand.Rand, i int) string {
	p := map[string]any{}
	switch q := r.Float64(); {
	case q < 0.33:
	case q < 0.58:
		p["tier"] = tiers[r.IntN(len(tiers))]
	case q < 0.90:
		p["name"] = names[r.IntN(len(names))] + " " + strconv.Itoa(i)
		p["tier"] = tiers[r.IntN(len(tiers))]
		p["language"] = languages[r.IntN(len(languages))]
		p["timezone"] = timeZones[r.IntN(len(timeZones))]
		p["signup_date"] = g.cfg.Now.AddDate(0, 0, -r.IntN(2000)).Format(time.DateOnly)
		if r.IntN(3) == 0 {
			p["age"] = 13 + r.IntN(70)
		}
	default:
		n := 30 + r.IntN(51)
		for k := range n {
			key := fmt.Sprintf("attr_%02d", k)
			switch r.IntN(5) {
			case 0:
				p[key] = r.IntN(1_000_000)
			case 1:
				p[key] = r.IntN(2) == 0
			case 2:
				p[key] = []any{words[r.IntN(len(words))], r.Float64()}
			case 3:
				p[key] = map[string]any{"v": words[r.IntN(len(words))], "n": r.IntN(100)}
			default:
				var sb strings.Builder
				for range 1 + r.IntN(12) {
					sb.WriteString(words[r.IntN(len(words))])
					sb.WriteByte(' ')
				}
				p[key] = sb.String()
			}
		}
		p["timezone"] = timeZones[r.IntN(len(timeZones))]
		p["language"] = languages[r.IntN(len(languages))]
	}
	g.targeting(p, i)
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain values only
	}
	return string(b)
}

// skewedDeviceCount: 45% of users have none, 33% one, 12% two, 7% 3 to
// 9 and 3% 10 to 40 (a mean of about 1.6).
func skewedDeviceCount(r *rand.Rand) int {
	switch p := r.Float64(); {
	case p < 0.45:
		return 0
	case p < 0.78:
		return 1
	case p < 0.90:
		return 2
	case p < 0.97:
		return 3 + r.IntN(7)
	}
	return 10 + r.IntN(31)
}

var skewedPlatforms = []string{"ios", "ios", "ios", "android", "android", "android", "android", "android", "web", "web", "web"}

func (g *gen) skewedDevices(w *bufio.Writer, i int) int {
	r := g.rng(streamDevice, i)
	n := skewedDeviceCount(r)
	owner := g.skewedUserID(i)
	rows := 0
	for k := 0; k <= n; k++ {
		if k == n {
			// ~1% of users leave an orphan device behind.
			if r.IntN(100) != 0 {
				break
			}
			owner = g.skewedUserID(g.cfg.Users + i)
		}
		platform := skewedPlatforms[r.IntN(len(skewedPlatforms))]
		field(w, g.skewedDeviceID(i, k))
		tab(w)
		field(w, owner)
		tab(w)
		fieldOrNull(w, "dev:"+strconv.Itoa(i)+":"+strconv.Itoa(k), r.IntN(3) != 0)
		tab(w)
		tok := g.token(platform, i, k)
		switch p := r.Float64(); {
		case p < 0.03:
			null(w)
		case p < 0.04:
			field(w, []string{"", "  ", "\t"}[r.IntN(3)])
		case p < 0.05:
			field(w, "\t"+tok+" ")
		case p < 0.06:
			field(w, "shared-"+platform+"-"+strconv.Itoa(i%31))
		default:
			field(w, tok)
		}
		tab(w)
		if r.IntN(100) == 0 {
			null(w)
		} else {
			field(w, platform)
		}
		tab(w)
		field(w, osVersions[r.IntN(len(osVersions))])
		tab(w)
		field(w, appVersions[r.IntN(len(appVersions))])
		tab(w)
		field(w, sdkVersions[r.IntN(len(sdkVersions))])
		tab(w)
		field(w, sdkTypes[r.IntN(len(sdkTypes))])
		end(w)
		rows++
	}
	return rows
}

// token is a token of the platform's shape: 64 hex digits for APNs, an FCM
// registration token (about 163 characters), a web-push endpoint (about 190).
func (g *gen) token(platform string, i, k int) string {
	var raw []byte
	for j := range uint64(8) {
		b := bytes16(uint64(g.cfg.Seed)+105+j, uint64(i)<<8|uint64(k))
		raw = append(raw, b[:]...)
	}
	switch platform {
	case "ios":
		return hex.EncodeToString(raw[:32])
	case "android":
		return base64.RawURLEncoding.EncodeToString(raw[:16]) + ":APA91b" + base64.RawURLEncoding.EncodeToString(raw[16:116])
	}
	return "https://fcm.googleapis.com/fcm/send/" + base64.RawURLEncoding.EncodeToString(raw[:16]) + ":APA91b" + base64.RawURLEncoding.EncodeToString(raw[16:])
}
