package publish

import (
	"testing"

	"github.com/segpub/segpub/internal/contact"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
)

// Every channel of the table finds its destination in a database
// candidate and in a CSV row: a channel (or a destination) the checks do
// not know fails here instead of counting everyone as no_contact.
func TestEveryChannelHasADestination(t *testing.T) {
	for _, ch := range job.Channels {
		d := ch.Destination()
		c := &checker{dest: d, userContact: userContacts[d.Column]}
		if !d.Device && c.userContact == nil {
			t.Errorf("%s: no reader of the user column %q (userContacts)", ch, d.Column)
			continue
		}
		db := &candidate{Recipient: message.Recipient{HasUser: true, Email: []byte(" a@b.co "), Phone: []byte("010-1234-5678"),
			HasDevice: true, Token: []byte(" tok ")}}
		want := map[string]string{"email": "a@b.co", "phone_number": "01012345678", "device_token": "tok"}[d.Column]
		if dest, _, st := c.destination(db); st != contact.OK || string(dest) != want {
			t.Errorf("%s: database candidate's destination %q, %v; want %q", ch, dest, st, want)
		}
		if d.Device {
			db.HasDevice = false
			if _, _, st := c.destination(db); st != contact.Missing {
				t.Errorf("%s: a user without a device is %v, want missing", ch, st)
			}
			continue
		}
		row := &candidate{Recipient: message.Recipient{CSV: []byte(`{}`)}, Contact: []byte(map[string]string{"email": "x@y.kr", "phone_number": "01099998888"}[d.CSVColumn])}
		if dest, _, st := c.destination(row); st != contact.OK || len(dest) == 0 {
			t.Errorf("%s: CSV row's destination %q, %v", ch, dest, st)
		}
	}
}
