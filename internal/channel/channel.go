// Package channel is the table of channels (docs/recipients.md,
// docs/channel-message.md, docs/governance.md): for each wire name, what
// its messages are addressed to, where that contact is read from and how
// it is checked, the device platforms it reaches and the governance rules
// that treat it apart. Job parsing, the
// audience query, the candidate sources, the checks, the message encoder and
// the job schema all read this table, so a new channel is one entry here.
//
// The package depends on nothing of segpub but the contact rules, so every
// package can consult it.
package channel

import "github.com/segpub/segpub/internal/contact"

// Name is a channel's wire name.
type Name string

// The contract's channels.
const (
	Push            Name = "push_notification"
	WebPush         Name = "web_push_notification"
	KakaoAlimtalk   Name = "kakao_alimtalk"
	KakaoFriendtalk Name = "kakao_friendtalk"
	Text            Name = "text_message"
	Email           Name = "email"
)

// Destination is what a channel's messages are addressed to: one contact
// of a user or of a device. The audience database's columns are fixed by
// the contract, so the destinations are too; channels share them.
type Destination struct {
	// Column is the contract's column that holds the contact
	// (user_{P}.email, user_{P}.phone_number, device_{P}.device_token).
	Column string
	// CSVColumn is the CSV audience's column that holds it; "" for device
	// destinations, whose rows name a user_id looked up in the database.
	CSVColumn string
	// Field is the channel message's recipient member that carries it.
	Field string
	// Device: the candidates are the user's devices of the channel's
	// platforms, not the user.
	Device bool
	// Check reads a raw contact (isNull: SQL NULL) and returns the
	// published destination, its de-duplication key (docs/recipients.md) and
	// whether it is usable.
	Check func(raw []byte, isNull bool) (dest, key []byte, st contact.Status)
}

// The destinations (docs/recipients.md).
var (
	EmailAddress = &Destination{Column: "email", CSVColumn: "email", Field: "email", Check: contact.Email}
	PhoneNumber  = &Destination{Column: "phone_number", CSVColumn: "phone_number", Field: "phone_number", Check: keyIsDest(contact.Phone)}
	DeviceToken  = &Destination{Column: "device_token", Field: "device", Device: true, Check: keyIsDest(contact.Token)}
)

// keyIsDest adapts a check whose published form is also its key.
func keyIsDest(check func([]byte, bool) ([]byte, contact.Status)) func([]byte, bool) ([]byte, []byte, contact.Status) {
	return func(raw []byte, isNull bool) ([]byte, []byte, contact.Status) {
		dest, st := check(raw, isNull)
		return dest, dest, st
	}
}

// Descriptor is everything segpub knows of one channel.
type Descriptor struct {
	Name        Name
	Destination *Destination
	// Platforms are the device platforms the channel reaches; nil for
	// destinations that are not devices.
	Platforms []string
	// NightRule: the night-time rule applies (docs/governance.md; email
	// is exempt).
	NightRule bool
}

// table lists every channel in the order the contract names them, which is
// the order of Names and of the job schema's enumeration.
var table = []Descriptor{
	{Name: Push, Destination: DeviceToken, Platforms: []string{"android", "ios"}, NightRule: true},
	{Name: WebPush, Destination: DeviceToken, Platforms: []string{"web"}, NightRule: true},
	{Name: KakaoAlimtalk, Destination: PhoneNumber, NightRule: true},
	{Name: KakaoFriendtalk, Destination: PhoneNumber, NightRule: true},
	{Name: Text, Destination: PhoneNumber, NightRule: true},
	{Name: Email, Destination: EmailAddress, NightRule: false},
}

var byName = func() map[Name]*Descriptor {
	m := make(map[Name]*Descriptor, len(table))
	for i := range table {
		m[table[i].Name] = &table[i]
	}
	return m
}()

// All returns the descriptors in the table's order.
func All() []Descriptor { return append([]Descriptor(nil), table...) }

// Names lists every channel's wire name in the table's order.
func Names() []Name {
	out := make([]Name, len(table))
	for i, d := range table {
		out[i] = d.Name
	}
	return out
}

// Lookup returns the channel's descriptor; ok is false for a name that is
// not a channel.
func Lookup(n Name) (d Descriptor, ok bool) {
	p, ok := byName[n]
	if !ok {
		return Descriptor{}, false
	}
	return *p, true
}

// Known reports whether n is a channel.
func (n Name) Known() bool { _, ok := byName[n]; return ok }

// Destination is the channel's destination; nil for a name that is not a
// channel (the job parser rejects those before anything runs).
func (n Name) Destination() *Destination {
	if d, ok := byName[n]; ok {
		return d.Destination
	}
	return nil
}

// IsDevice reports whether the channel's destination is a device token.
func (n Name) IsDevice() bool {
	d := n.Destination()
	return d != nil && d.Device
}

// TargetsDevices reports whether delivery.most_recent_device_only applies
// to the channel (docs/delivery.md): it picks one device of a user, so it
// needs a channel whose candidates are devices.
func (n Name) TargetsDevices() bool { return n.IsDevice() }

// Platforms returns the device platforms a device channel reaches.
func (n Name) Platforms() []string {
	if d, ok := byName[n]; ok {
		return d.Platforms
	}
	return nil
}

// NightRule reports whether the night-time rule (docs/governance.md)
// applies to the channel.
func (n Name) NightRule() bool {
	d, ok := byName[n]
	return ok && d.NightRule
}
