package seed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// COPY text format: tab-separated, \N for NULL, backslash escapes.
func field(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			w.WriteString(`\\`)
		case '\t':
			w.WriteString(`\t`)
		case '\n':
			w.WriteString(`\n`)
		case '\r':
			w.WriteString(`\r`)
		default:
			w.WriteByte(c)
		}
	}
}

func null(w *bufio.Writer) { w.WriteString(`\N`) }

func tab(w *bufio.Writer) { w.WriteByte('\t') }

func end(w *bufio.Writer) { w.WriteByte('\n') }

// fieldOrNull writes s, or NULL when !ok.
func fieldOrNull(w *bufio.Writer, s string, ok bool) {
	if !ok {
		null(w)
		return
	}
	field(w, s)
}

var (
	names = []string{"Kim Minsu", "O'Brien", `Ann "Quoted"`, "김민수", "'; DROP TABLE users; --", "Zoë", "back\\slash", "tab\there"}
	tiers = []string{"gold", "silver", "bronze", "Gold"}
)

func (g *gen) user(w *bufio.Writer, i int) int {
	r := g.rng(streamUser, i)
	field(w, g.UserID(i))
	tab(w)
	fieldOrNull(w, "ext-"+strconv.Itoa(i), r.Float64() >= 0.03)
	tab(w)
	email, ok := g.email(r, i)
	fieldOrNull(w, email, ok)
	tab(w)
	phone, ok := phone(r, i)
	fieldOrNull(w, phone, ok)
	tab(w)
	field(w, g.properties(r, i))
	tab(w)
	w.WriteString(strconv.Itoa(r.IntN(10000)))
	end(w)
	return 1
}

func (g *gen) email(r interface{ Float64() float64 }, i int) (string, bool) {
	switch p := r.Float64(); {
	case p < 0.02:
		return "", false
	case p < 0.03:
		return "", true
	case p < 0.04:
		return " \t ", true
	case p < 0.05:
		return fmt.Sprintf("user%dexample.com", i), true
	case p < 0.055:
		return fmt.Sprintf("user%d@example", i), true
	case p < 0.06:
		return fmt.Sprintf("us er%d@example.com", i), true
	case p < 0.09:
		return fmt.Sprintf("  User%d@Example.COM ", i), true
	case p < 0.10:
		// Shared with other users, differing only in case and spaces.
		if i%2 == 0 {
			return fmt.Sprintf(" Shared%d@Example.com", i%97), true
		}
		return fmt.Sprintf("shared%d@example.COM\t", i%97), true
	}
	return fmt.Sprintf("user%d@example.com", i), true
}

func phone(r interface {
	Float64() float64
	IntN(int) int
}, i int) (string, bool) {
	n := 10000000 + i%90000000
	a, b := n/10000, n%10000
	switch p := r.Float64(); {
	case p < 0.03:
		return "", false
	case p < 0.04:
		return "02-123-4567", true
	case p < 0.05:
		return "12345", true
	case p < 0.06:
		return fmt.Sprintf("010-0000-%04d", i%100), true // shared
	case p < 0.07:
		return fmt.Sprintf("011-%03d-%04d", a%1000, b), true // 10 digits
	}
	switch r.IntN(5) {
	case 0:
		return fmt.Sprintf("010-%04d-%04d", a, b), true
	case 1:
		return fmt.Sprintf("010%04d%04d", a, b), true
	case 2:
		return fmt.Sprintf("+82 10-%04d-%04d", a, b), true
	case 3:
		return fmt.Sprintf("+8210%04d%04d", a, b), true
	}
	return fmt.Sprintf("(010) %04d.%04d", a, b), true
}

func (g *gen) properties(r interface {
	Float64() float64
	IntN(int) int
}, i int) string {
	p := map[string]any{
		"name":           names[r.IntN(len(names))] + " " + strconv.Itoa(i),
		"tier":           tiers[r.IntN(len(tiers))],
		"vip":            r.IntN(10) == 0,
		"signup_date":    g.cfg.Now.AddDate(0, 0, -r.IntN(1000)).Format(time.DateOnly),
		"favorite color": []string{"red", "blue", "green"}[r.IntN(3)],
	}
	switch q := r.Float64(); {
	case q < 0.05:
		p["age"] = strconv.Itoa(18 + r.IntN(60)) // a number stored as a string
	case q < 0.10:
		p["age"] = nil
	case q < 0.20:
	default:
		p["age"] = 18 + r.IntN(60)
	}
	if r.IntN(20) == 0 {
		p["$custom"] = "dollar-named property"
	}
	g.targeting(p, i)
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain values only
	}
	return string(b)
}

// targeting sets the properties delivery targeting reads when Targeting is
// on, whatever the generator.
func (g *gen) targeting(p map[string]any, i int) {
	if !g.cfg.Targeting {
		return
	}
	t := g.rng(streamTargeting, i)
	if z := seedZones[t.IntN(len(seedZones))]; z != "" {
		p["timezone"] = z
	}
	if l := seedLanguages[t.IntN(len(seedLanguages))]; l != "" {
		p["language"] = l
	}
}

// seedZones and seedLanguages are what Targeting draws from: mostly
// Korean users, zones with odd offsets and daylight saving, values that are
// not zones ("" leaves the property out).
var (
	seedZones = []string{"Asia/Seoul", "Asia/Seoul", "Asia/Seoul", "Asia/Seoul", "Asia/Tokyo", "America/New_York",
		"America/Los_Angeles", "Europe/Berlin", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide",
		"Australia/Sydney", "Pacific/Kiritimati", "America/Santiago", "UTC", "Local", "asia/seoul", ""}
	seedLanguages = []string{"ko", "ko", "ko-KR", "ko_KR", "en", "en-US", "en-GB", "ja", "ja-JP", "zh-Hant-TW", "zh-Hans", "fr", "", ""}
)

var (
	platforms   = []string{"ios", "ios", "ios", "ios", "android", "android", "android", "android", "web", "web"}
	osVersions  = []string{"17.1", "16.4.1", "14", "13", "10.15.7"}
	appVersions = []string{"3.9.2", "3.10.0", "3.10", "3.8", "4.0.1", "3.9.10", "beta", "3.x"}
	sdkVersions = []string{"2.1.0", "2.0", "1.9.9"}
	sdkTypes    = []string{"native", "flutter", "react-native", "unity"}
)

func (g *gen) devices(w *bufio.Writer, i int) int {
	r := g.rng(streamDevice, i)
	var n int
	switch p := r.Float64(); {
	case p < 0.15:
		n = 0
	case p < 0.75:
		n = 1
	case p < 0.95:
		n = 2
	default:
		n = 3 + r.IntN(2)
	}
	owner := g.UserID(i)
	rows := 0
	for k := 0; k <= n; k++ {
		if k == n {
			// ~0.5% of users leave an orphan device behind: its
			// user does not exist.
			if r.IntN(200) != 0 {
				break
			}
			owner = g.UserID(g.cfg.Users + i)
		}
		field(w, hex128(uint64(g.cfg.Seed)+7, uint64(i)<<8|uint64(k)))
		tab(w)
		field(w, owner)
		tab(w)
		fieldOrNull(w, fmt.Sprintf("xd-%d-%d", i, k), r.IntN(5) != 0)
		tab(w)
		switch p := r.Float64(); {
		case p < 0.02:
			null(w)
		case p < 0.03:
			field(w, []string{"", "  ", "\t"}[r.IntN(3)])
		case p < 0.04:
			field(w, " tok-"+hex128(uint64(g.cfg.Seed)+9, uint64(i)<<8|uint64(k))+" ")
		case p < 0.045:
			field(w, "shared-token-"+strconv.Itoa(i%50))
		default:
			field(w, hex128(uint64(g.cfg.Seed)+9, uint64(i)<<8|uint64(k))+hex128(uint64(g.cfg.Seed)+11, uint64(i)<<8|uint64(k)))
		}
		tab(w)
		switch p := r.IntN(100); {
		case p < 2:
			field(w, "windows")
		case p < 3:
			null(w)
		default:
			field(w, platforms[r.IntN(len(platforms))])
		}
		tab(w)
		field(w, osVersions[r.IntN(len(osVersions))])
		tab(w)
		if r.IntN(50) == 0 {
			null(w)
		} else {
			field(w, appVersions[r.IntN(len(appVersions))])
		}
		tab(w)
		field(w, sdkVersions[r.IntN(len(sdkVersions))])
		tab(w)
		field(w, sdkTypes[r.IntN(len(sdkTypes))])
		end(w)
		rows++
	}
	return rows
}

var eventNames = []string{"purchase", "app_open", "view_item"}

// events writes up to two event names on distinct days of the last 30.
func (g *gen) events(w *bufio.Writer, i int) int {
	r := g.rng(streamEvent, i)
	if r.IntN(10) >= 4 {
		return 0
	}
	rows := 0
	for e, name := range eventNames {
		if e > 0 && r.IntN(2) == 0 {
			continue
		}
		days := r.Perm(30)[:1+r.IntN(3)]
		for _, d := range days {
			field(w, g.userID(i))
			tab(w)
			field(w, name)
			tab(w)
			field(w, g.seoulToday.AddDate(0, 0, -d).Format(time.DateOnly))
			tab(w)
			c := 1 + r.IntN(5)
			w.WriteString(strconv.Itoa(c))
			tab(w)
			w.WriteString(strconv.Itoa(c * (1000 + r.IntN(9000))))
			end(w)
			rows++
		}
	}
	return rows
}

func (g *gen) deliveries(w *bufio.Writer, i int) int {
	r := g.rng(streamDelivery, i)
	rows := 0
	for _, c := range []string{PreviousCampaign, "cmp_prev2"} {
		if r.IntN(10) != 0 {
			continue
		}
		field(w, c)
		tab(w)
		field(w, g.userID(i))
		tab(w)
		field(w, []string{"email", "push_notification", "text_message"}[r.IntN(3)])
		tab(w)
		field(w, []string{"sent", "delivered", "failed"}[r.IntN(3)])
		tab(w)
		field(w, g.cfg.Now.Add(-time.Duration(r.Int64N(int64(14*24*time.Hour)))).UTC().Format(time.RFC3339Nano))
		end(w)
		rows++
	}
	return rows
}
