package channel

import (
	"slices"
	"testing"

	"github.com/segpub/segpub/internal/contact"
)

// The job format's wire names (docs/job.md), in its order.
var contractChannels = []Name{"push_notification", "web_push_notification", "kakao_alimtalk", "kakao_friendtalk", "text_message", "email"}

func TestTableHasEveryContractChannel(t *testing.T) {
	if got := Names(); !slices.Equal(got, contractChannels) {
		t.Fatalf("channel table %v, want the contract's %v", got, contractChannels)
	}
}

// Every descriptor is complete: a channel added with a field left out
// fails here, not as recipients counted no_contact in production.
func TestDescriptorsAreComplete(t *testing.T) {
	seen := map[Name]bool{}
	for _, d := range All() {
		if d.Name == "" || seen[d.Name] {
			t.Errorf("%q: empty or repeated name", d.Name)
		}
		seen[d.Name] = true
		dst := d.Destination
		if dst == nil {
			t.Errorf("%s: no destination", d.Name)
			continue
		}
		if dst.Column == "" || dst.Field == "" || dst.Check == nil {
			t.Errorf("%s: destination without column, message field or check: %+v", d.Name, dst)
		}
		if dst.Device {
			if len(d.Platforms) == 0 || dst.CSVColumn != "" {
				t.Errorf("%s: a device destination needs platforms and no CSV contact column", d.Name)
			}
		} else if len(d.Platforms) != 0 || dst.CSVColumn == "" {
			t.Errorf("%s: a user contact needs a CSV column and no platforms", d.Name)
		}
		if got, ok := Lookup(d.Name); !ok || got.Name != d.Name {
			t.Errorf("%s: Lookup finds %+v, %v", d.Name, got, ok)
		}
	}
	if Name("sms").Known() || Name("sms").Destination() != nil || Name("sms").IsDevice() {
		t.Error("a name that is no channel is known")
	}
}

// Section 4's facts, read through the table.
func TestContractFacts(t *testing.T) {
	for _, tc := range []struct {
		ch        Name
		device    bool
		platforms []string
		column    string
		night     bool
		raw, dest string
	}{
		{Push, true, []string{"android", "ios"}, "device_token", true, " tok ", "tok"},
		{WebPush, true, []string{"web"}, "device_token", true, "tok", "tok"},
		{KakaoAlimtalk, false, nil, "phone_number", true, "+82 10-1234-5678", "01012345678"},
		{KakaoFriendtalk, false, nil, "phone_number", true, "010.1234.5678", "01012345678"},
		{Text, false, nil, "phone_number", true, "(010) 1234 5678", "01012345678"},
		{Email, false, nil, "email", false, " A@B.co ", "A@B.co"},
	} {
		d := tc.ch.Destination()
		if tc.ch.IsDevice() != tc.device || tc.ch.TargetsDevices() != tc.device || !slices.Equal(tc.ch.Platforms(), tc.platforms) || d.Column != tc.column || tc.ch.NightRule() != tc.night {
			t.Errorf("%s: device %v platforms %v column %s night %v", tc.ch, tc.ch.IsDevice(), tc.ch.Platforms(), d.Column, tc.ch.NightRule())
		}
		dest, _, st := d.Check([]byte(tc.raw), false)
		if st != contact.OK || string(dest) != tc.dest {
			t.Errorf("%s: %q checks to %q, %v; want %q", tc.ch, tc.raw, dest, st, tc.dest)
		}
		if _, _, st := d.Check(nil, true); st != contact.Missing {
			t.Errorf("%s: NULL contact is %v, want missing", tc.ch, st)
		}
	}
	if _, key, _ := EmailAddress.Check([]byte("A@B.co"), false); string(key) != "a@b.co" {
		t.Errorf("email key %q, want lower-cased", key)
	}
}
