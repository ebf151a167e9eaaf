// Package message encodes channel messages (docs/channel-message.md) and their
// idempotency keys. Encoding appends into a caller's buffer: a large run
// encodes millions of messages, and reflection-based encoding per message
// would dominate its CPU time.
package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/segpub/segpub/internal/job"
)

// Recipient is one candidate's data as read from the database or a CSV row.
// Byte slices are nil for SQL NULL.
type Recipient struct {
	UserID         []byte
	ExternalUserID []byte
	Email          []byte
	Phone          []byte
	// Properties is user_properties as JSON text; nil when not loaded or
	// when the recipient has no database user.
	Properties []byte

	HasDevice        bool
	DeviceID         []byte
	ExternalDeviceID []byte
	Token            []byte
	Platform         []byte
	OSVersion        []byte
	AppVersion       []byte
	SDKVersion       []byte
	SDKType          []byte
	DeviceUpdatedAt  time.Time

	// CSV is the CSV row as a JSON object, nil unless the audience is a CSV.
	CSV []byte
	// HasUser is false for CSV recipients that come from the file alone.
	HasUser bool
}

// Encoder encodes the messages of one run.
type Encoder struct {
	// device: the recipient is a device object; otherwise contactField
	// (`,"email":`) names the member that carries the destination, as the
	// channel's table says (nil for a name that is no channel).
	device       bool
	contactField []byte
	// keyPrefix is "project\ncampaign\nrequest\nchannel\n", the fixed part
	// of every idempotency key's input.
	keyPrefix []byte
	// head is everything between the idempotency key and variant_id.
	head     []byte
	messages map[string][]byte
	base     []byte
	keyBuf   []byte
	// localized: the job has delivery.localized_messages; localeKeys are
	// the keys as JSON strings and localeMessages the messages, index for
	// index (docs/delivery.md).
	localized      bool
	localeKeys     [][]byte
	localeMessages [][]byte
}

// NoLocale is the locale index of a recipient for whom no localized
// message was selected: the message carries "locale": null.
const NoLocale = -1

// NewEncoder prepares the fixed parts of a run's messages. variantMessages
// replace the campaign's message for recipients of that variant.
func NewEncoder(j *job.Job) *Encoder {
	c := j.Campaign
	e := &Encoder{messages: map[string][]byte{}}
	if d := c.Channel.Destination(); d != nil {
		e.device = d.Device
		e.contactField = fmt.Appendf(nil, `,%q:`, d.Field)
	}
	e.keyPrefix = fmt.Appendf(nil, "%s\n%s\n%s\n%s\n", j.ProjectID, c.ID, j.RequestID, c.Channel)
	h := []byte(`","request_id":`)
	h = AppendString(h, j.RequestID)
	h = append(h, `,"project_id":`...)
	h = AppendString(h, j.ProjectID)
	h = append(h, `,"campaign_id":`...)
	h = AppendString(h, c.ID)
	h = append(h, `,"channel":`...)
	h = AppendString(h, string(c.Channel))
	h = append(h, `,"variant_id":`...)
	e.head = h
	// The job's messages are spliced into every message as they are:
	// their noncharacters are escaped here, once.
	e.base = escapeNoncharacters(nil, c.Message)
	if c.Message == nil {
		e.base = []byte("null")
	}
	for id, m := range c.VariantMessages {
		e.messages[id] = escapeNoncharacters(nil, m)
	}
	if d := c.Delivery; d != nil && d.Localized != nil {
		e.localized = true
		for i, k := range d.Localized.Keys {
			e.localeKeys = append(e.localeKeys, AppendString(nil, k))
			e.localeMessages = append(e.localeMessages, escapeNoncharacters(nil, d.Localized.Messages[i]))
		}
	}
	return e
}

// Key computes the idempotency key of a destination: the SHA-256 of the
// fixed prefix and the destination. The first 8 bytes double as the
// destination's de-duplication fingerprint, so each candidate is hashed once.
func (e *Encoder) Key(dest []byte) (sum [sha256.Size]byte) {
	e.keyBuf = append(append(e.keyBuf[:0], e.keyPrefix...), dest...)
	return sha256.Sum256(e.keyBuf)
}

// Fingerprint returns the 64-bit de-duplication fingerprint of a key.
func Fingerprint(sum [sha256.Size]byte) uint64 { return binary.BigEndian.Uint64(sum[:8]) }

// keyPrefix opens every message Append writes; the idempotency key follows
// it, so KeyIn finds the key without decoding the message.
const keyPrefix = `{"idempotency_key":"`

// KeyIn returns the hex idempotency key of a message Append wrote (a slice
// of msg).
func KeyIn(msg []byte) []byte {
	return msg[len(keyPrefix) : len(keyPrefix)+2*sha256.Size]
}

// Append encodes one channel message. dest is the published destination
// (normalized phone, trimmed email or token); sendAt is pre-formatted.
func (e *Encoder) Append(buf []byte, key [sha256.Size]byte, variantID string, sendAt []byte, r *Recipient, dest []byte) []byte {
	return e.AppendLocale(buf, key, variantID, sendAt, r, dest, NoLocale)
}

// AppendLocale is Append for a recipient whose localized message is the
// locale'th of the job's delivery.localized_messages (NoLocale: none
// selected). Without localized messages the locale is ignored and the
// message has no locale member.
func (e *Encoder) AppendLocale(buf []byte, key [sha256.Size]byte, variantID string, sendAt []byte, r *Recipient, dest []byte, locale int) []byte {
	buf = append(buf, keyPrefix...)
	buf = hex.AppendEncode(buf, key[:])
	buf = append(buf, e.head...)
	msg := e.base
	if variantID == "" {
		buf = append(buf, "null"...)
	} else {
		buf = AppendString(buf, variantID)
		if m, ok := e.messages[variantID]; ok {
			msg = m
		}
	}
	buf = append(buf, `,"send_at":"`...)
	buf = append(buf, sendAt...)
	buf = append(buf, `","recipient":{"notifly_user_id":`...)
	// Fields written twice (recipient and personalization) are escaped
	// once: the second copy is the first's bytes.
	var seen written
	seen.user = span{len(buf), 0}
	buf = appendNullable(buf, r.UserID)
	seen.user.end = len(buf)
	buf = append(buf, `,"external_user_id":`...)
	buf = appendNullable(buf, r.ExternalUserID)
	if e.device {
		buf = append(buf, `,"device":{"notifly_device_id":`...)
		seen.device = span{len(buf), 0}
		buf = appendNullable(buf, r.DeviceID)
		seen.device.end = len(buf)
		buf = append(buf, `,"device_token":`...)
		buf = appendBytes(buf, dest)
		seen.tail = span{len(buf), 0}
		buf = appendDeviceTail(buf, r)
		seen.tail.end = len(buf)
		buf = append(buf, '}')
	} else if e.contactField != nil {
		buf = append(buf, e.contactField...)
		buf = appendBytes(buf, dest)
	}
	buf = append(buf, `},"personalization":{"user":`...)
	buf = appendUser(buf, r)
	buf = append(buf, `,"device":`...)
	buf = appendDevice(buf, r, &seen)
	buf = append(buf, `,"csv":`...)
	if r.CSV == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, r.CSV...)
	}
	buf = append(buf, '}')
	if e.localized {
		buf = append(buf, `,"locale":`...)
		if locale >= 0 && locale < len(e.localeKeys) {
			buf = append(buf, e.localeKeys[locale]...)
			msg = e.localeMessages[locale]
		} else {
			buf = append(buf, "null"...)
		}
	}
	buf = append(buf, `,"message":`...)
	buf = append(buf, msg...)
	return append(buf, '}')
}

// escapeNoncharacters appends JSON text src to buf with U+FFFE and U+FFFF
// written as JSON escapes. They are valid
// UTF-8 that PostgreSQL stores and returns raw, but SQS refuses a message
// holding them, which would fail the whole batch for one user's property.
// Outside strings JSON is ASCII, so every occurrence is inside a string,
// where the escape means the same character. Strings the encoder writes
// itself escape them in appendBytes; only JSON spliced in as it comes (the
// properties, the job's messages) goes through here.
func escapeNoncharacters(buf, src []byte) []byte {
	i := bytes.Index(src, nonchar)
	msg := src
	for {
		if i < 0 || i+3 > len(msg) {
			return append(buf, msg...)
		}
		if c := msg[i+2]; c == 0xbe || c == 0xbf {
			buf = append(buf, msg[:i]...)
			if c == 0xbe {
				buf = append(buf, `\ufffe`...)
			} else {
				buf = append(buf, `\uffff`...)
			}
			msg = msg[i+3:]
		} else {
			buf = append(buf, msg[:i+2]...)
			msg = msg[i+2:]
		}
		i = bytes.Index(msg, nonchar)
	}
}

// nonchar is the UTF-8 prefix shared by U+FFC0..U+FFFF.
var nonchar = []byte{0xef, 0xbf}

// userKeys are the column values personalization.user adds to the
// properties; they win over properties of the same name.
var userKeys = [][]byte{[]byte(`"$email"`), []byte(`"$phone_number"`), []byte(`"external_user_id"`)}

// hasUserKey reports whether props may hold one of userKeys. A match inside
// a value only takes the slow path, which is exact. The two "$" keys are
// searched for only when a '$' occurs at all: one byte scan instead of two
// substring searches on every row.
func hasUserKey(props []byte) bool {
	if bytes.IndexByte(props, '$') >= 0 && (bytes.Contains(props, userKeys[0]) || bytes.Contains(props, userKeys[1])) {
		return true
	}
	return bytes.Contains(props, userKeys[2])
}

// appendUser writes user_properties plus $email, $phone_number and
// external_user_id. The properties' JSON text is spliced in as it comes from
// PostgreSQL; only when it already holds one of the added keys is it decoded,
// so the object never has a key twice.
func appendUser(buf []byte, r *Recipient) []byte {
	if !r.HasUser {
		return append(buf, "null"...)
	}
	buf = append(buf, `{"$email":`...)
	buf = appendNullable(buf, r.Email)
	buf = append(buf, `,"$phone_number":`...)
	buf = appendNullable(buf, r.Phone)
	buf = append(buf, `,"external_user_id":`...)
	buf = appendNullable(buf, r.ExternalUserID)
	props := bytes.TrimSpace(r.Properties)
	if len(props) < 2 || props[0] != '{' {
		// Not an object (bad data written by another service): the
		// properties are left out rather than failing the run.
		return append(buf, '}')
	}
	if hasUserKey(props) {
		return appendPropsSlow(buf, props)
	}
	inner := bytes.TrimSpace(props[1 : len(props)-1])
	if len(inner) > 0 {
		buf = append(buf, ',')
		buf = escapeNoncharacters(buf, inner)
	}
	return append(buf, '}')
}

func appendPropsSlow(buf []byte, props []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(props, &m); err != nil {
		return append(buf, '}')
	}
	delete(m, "$email")
	delete(m, "$phone_number")
	delete(m, "external_user_id")
	for _, k := range slices.Sorted(maps.Keys(m)) {
		buf = append(buf, ',')
		buf = AppendString(buf, k)
		buf = append(buf, ':')
		buf = escapeNoncharacters(buf, m[k])
	}
	return append(buf, '}')
}

// span is where a value's JSON sits in the message being written (end 0:
// not written).
type span struct{ start, end int }

// written are the values Append has escaped already in recipient, for
// personalization to copy.
type written struct{ user, device, tail span }

// again appends the JSON at sp in buf, or writes it with write when it
// was not written before.
func again(buf []byte, sp span, write func([]byte) []byte) []byte {
	if sp.end == 0 {
		return write(buf)
	}
	return append(buf, buf[sp.start:sp.end]...)
}

func appendDevice(buf []byte, r *Recipient, seen *written) []byte {
	if !r.HasDevice {
		return append(buf, "null"...)
	}
	buf = append(buf, `{"notifly_device_id":`...)
	buf = again(buf, seen.device, func(b []byte) []byte { return appendNullable(b, r.DeviceID) })
	buf = append(buf, `,"notifly_user_id":`...)
	buf = again(buf, seen.user, func(b []byte) []byte { return appendNullable(b, r.UserID) })
	buf = append(buf, `,"external_device_id":`...)
	buf = appendNullable(buf, r.ExternalDeviceID)
	buf = append(buf, `,"device_token":`...)
	buf = appendNullable(buf, r.Token)
	buf = again(buf, seen.tail, func(b []byte) []byte { return appendDeviceTail(b, r) })
	buf = append(buf, `,"updated_at":"`...)
	buf = r.DeviceUpdatedAt.UTC().AppendFormat(buf, time.RFC3339Nano)
	return append(buf, `"}`...)
}

// appendDeviceTail writes the device fields recipient.device and
// personalization.device share, after the token.
func appendDeviceTail(buf []byte, r *Recipient) []byte {
	buf = append(buf, `,"platform":`...)
	buf = appendNullable(buf, r.Platform)
	buf = append(buf, `,"os_version":`...)
	buf = appendNullable(buf, r.OSVersion)
	buf = append(buf, `,"app_version":`...)
	buf = appendNullable(buf, r.AppVersion)
	buf = append(buf, `,"sdk_version":`...)
	buf = appendNullable(buf, r.SDKVersion)
	buf = append(buf, `,"sdk_type":`...)
	return appendNullable(buf, r.SDKType)
}

// AppendSendAt formats a send time as the messages carry it.
func AppendSendAt(buf []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(buf, time.RFC3339Nano)
}

func appendNullable(buf, b []byte) []byte {
	if b == nil {
		return append(buf, "null"...)
	}
	return appendBytes(buf, b)
}

// AppendString appends s as a JSON string.
func AppendString(buf []byte, s string) []byte {
	// appendBytes only reads b, so s's bytes need no copy.
	return appendBytes(buf, unsafe.Slice(unsafe.StringData(s), len(s)))
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes that go into a JSON string as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special8 marks, in the high bit of each byte, the bytes of x that do not
// go into a JSON string as they are: quotes, backslashes, control
// characters and the bytes of multi-byte characters. Only its lowest set
// bit is exact (a borrow can mark bytes above it), which is all the
// caller uses: a word at a time, it finds the next byte that needs a look,
// so a JSON body escaped into a JSON string (a quote every few bytes)
// copies its plain runs without a byte loop.
func special8(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	// (v - lo*n) &^ v & hi marks the bytes of v below n, exactly up to
	// the lowest one; bytes of 0x80 and above are marked by x & hi.
	less := func(v, n uint64) uint64 { return (v - lo*n) &^ v & hi }
	return x&hi | less(x, 0x20) | less(x^(lo*'"'), 1) | less(x^(lo*'\\'), 1)
}

// appendBytes appends b as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD so the output is
// always valid JSON. Runs of plain ASCII, nearly all of a message, are
// copied in one append.
func appendBytes(buf, b []byte) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(b); {
		if i+8 <= len(b) {
			m := special8(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := b[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			buf = append(buf, b[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, b[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\ufffe' || r == '\uffff' {
			// See escapeNoncharacters.
			buf = append(buf, b[start:i]...)
			buf = append(buf, `\ufff`...)
			buf = append(buf, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Valid JSON, but JavaScript consumers choke on them raw.
			buf = append(buf, b[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, b[start:]...)
	return append(buf, '"')
}

// AppendCSVRow encodes a CSV row as a JSON object in header order.
func AppendCSVRow(buf []byte, header []string, values []string) []byte {
	buf = append(buf, '{')
	for i, h := range header {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendString(buf, h)
		buf = append(buf, ':')
		buf = AppendString(buf, values[i])
	}
	return append(buf, '}')
}
