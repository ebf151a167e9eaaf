package publish

import (
	"bytes"
	"context"
	"maps"
	"sync/atomic"
	"time"

	"github.com/segpub/segpub/internal/channel"
	"github.com/segpub/segpub/internal/contact"
	"github.com/segpub/segpub/internal/dedup"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
)

// checker applies the contract's checks to candidates in order, giving each
// exactly one skip reason or publishing it: unknown_user,
// previously_received, no_consent, frequency_capped, control_group,
// no_contact, invalid_contact, duplicate_destination. Eligibility (consent,
// cap) is decided before the control group is drawn, and a skipped
// candidate never takes a destination, so it goes to the next one. Candidates arrive in (notifly_user_id,
// notifly_device_id) order (file order for CSV), so the first candidate of a
// destination is the one the contract says wins.
type checker struct {
	p *plan
	// dest is the channel's destination; userContact reads its column
	// from a user (nil for device destinations).
	dest        *channel.Destination
	userContact func(*message.Recipient) []byte
	enc         *message.Encoder
	seen        *dedup.Set
	batchSize   int
	// failpoints is nil outside tests.
	failpoints *failpoint.Set

	// published counts messages so far; it numbers throttle waves.
	published int64
	// wave is the current throttle wave of the run's messages (without
	// local_time, whose waves count per base time: waves).
	wave waveClock
	// nightRule: the job defers night-time messages to recipients
	// without night-time consent; zone is the clock it reads.
	nightRule bool
	zone      *time.Location
	// capacity is the number of messages whose send_at fits before
	// job.MaxTime.
	capacity int64

	candidates atomic.Int64
	lastUser   []byte
	// resume is where an earlier attempt's publishing got to: candidates
	// up to it are checked but not published again.
	resume      Checkpoint
	resumeAfter []byte
	trace       func(Outcome)
	// cur is the sink batch being filled.
	cur *Batch
	// collect gathers the fingerprints of published destinations instead
	// of encoding messages (Range.Collect).
	collect   bool
	collected []uint64
	// limit is the destination's largest message (0: none); scratch
	// holds a resumed run's messages, encoded only to be measured.
	limit   int
	scratch []byte
	// counted mirrors res.Published for progress reports from other
	// goroutines; progress reports the counts (nil: none).
	counted  atomic.Int64
	progress func()
	// skipped is a copy of res.Skipped after the last batch checked, for
	// progress reports from other goroutines (nil: none yet).
	skipped atomic.Pointer[Skipped]

	// tg is the run's delivery targeting (nil: off); pend the held device
	// of the current user (most_recent_device_only); waves the throttle
	// waves per base time (local_time), as many as distinct base times;
	// lastBase the base time of the candidate being checked, for its trace.
	tg       *targeting
	pend     pending
	waves    map[int64]*waveClock
	lastBase baseTime
	// fail stops the run at the next candidate (a send_at past MaxTime).
	fail error
}

func (c *checker) traceOutcome(cand *candidate, reason, variantID string, msg []byte, deferred bool, base baseTime, locale int) {
	o := Outcome{UserID: string(cand.UserID), ExternalUserID: string(cand.ExternalUserID), DeviceID: string(cand.DeviceID),
		Reason: reason, VariantID: variantID, Message: msg,
		NoConsent: cand.NoConsent, Capped: cand.Capped, Deferred: deferred,
		BaseTime: base.at, BasePassed: base.passed, Zone: base.zone, ZoneFallback: base.fallback, DeviceUpdatedAt: cand.DeviceUpdatedAt}
	if locale >= 0 && c.tg != nil && c.tg.localized != nil {
		o.Locale = c.tg.localized.Keys[locale]
	}
	c.trace(o)
}

// ReasonMessageTooLarge is the reason (Outcome.Reason, and the key of
// Result.Unpublishable) of a candidate whose message is over the channel
// destination's size limit.
const ReasonMessageTooLarge = "message_too_large"

// published reports whether an earlier attempt already published cand's
// message (its position is at or before the checkpoint).
func (c *checker) alreadyPublished(cand *candidate) bool {
	if c.resume.IsZero() {
		return false
	}
	if c.p.csv != nil {
		return cand.Row <= c.resume.Rows
	}
	return bytes.Compare(cand.UserID, c.resumeAfter) <= 0
}

func newChecker(p *plan, batchSize int, zone *time.Location) *checker {
	c := &checker{
		p:         p,
		dest:      p.job.Campaign.Channel.Destination(),
		enc:       message.NewEncoder(p.job),
		seen:      dedup.New(int(p.estimate)),
		batchSize: batchSize,
		wave:      waveClock{wave: -1},
		zone:      zone,
		capacity:  job.ThrottleCapacity(p.reference, p.job.Campaign.Throttle),
		waves:     map[int64]*waveClock{},
	}
	c.userContact = userContacts[c.dest.Column]
	camp := p.job.Campaign
	c.nightRule = camp.Advertising != nil && camp.Advertising.NightConsent != "" && camp.Channel.NightRule()
	return c
}

// waveClock caches the formatted send_at of a throttle's current wave,
// whether it falls in the night window, and the 08:00 it defers to: the
// run's waves, or with local_time those of one base time, whose messages
// it numbers (n; docs/delivery.md: waves are counted per base time).
type waveClock struct {
	n        int64
	wave     int64
	sendAt   []byte
	night    bool
	deferred []byte
}

// set makes message k of base time at (the reference time without
// local_time) the clock's current wave: its send_at, whether that falls in
// the night window of zone, and the 08:00 it defers to (docs/governance.md: waves are
// numbered first, then deferred). ok is false past the last wave that fits
// before job.MaxTime; the time is then what it would be, and the run stops
// at it.
func (w *waveClock) set(at time.Time, th *job.Throttle, k int64, nightRule bool, zone *time.Location) (ok bool) {
	wave := int64(0)
	if th != nil {
		wave = k / th.MaxPerInterval
	}
	if wave == w.wave && w.sendAt != nil {
		return true
	}
	t, ok := job.SendAt(at, th, k)
	w.sendAt = message.AppendSendAt(w.sendAt[:0], t)
	w.night = false
	if nightRule {
		if next, night := NightDeferral(t, zone); night {
			w.night = true
			w.deferred = message.AppendSendAt(w.deferred[:0], next)
		}
	}
	w.wave = wave
	return ok
}

// sendAtFor is the send_at of the clock's current wave for a recipient, and
// whether the night-time rule deferred it.
func (w *waveClock) sendAtFor(nightConsent bool) ([]byte, bool) {
	if w.night && !nightConsent {
		return w.deferred, true
	}
	return w.sendAt, false
}

// Night-time rule (docs/governance.md): advertising sent at or after
// 21:00 and before 08:00 in the contract's zone (Config.Zone, Asia/Seoul)
// needs night-time consent.
const (
	NightStartHour = 21
	NightEndHour   = 8
)

// NightDeferral reports whether t falls in the night window in zone and,
// if so, the next 08:00:00 there.
func NightDeferral(t time.Time, zone *time.Location) (time.Time, bool) {
	local := t.In(zone)
	h := local.Hour()
	if h >= NightEndHour && h < NightStartHour {
		return t, false
	}
	day := local
	if h >= NightStartHour {
		day = local.AddDate(0, 0, 1)
	}
	return time.Date(day.Year(), day.Month(), day.Day(), NightEndHour, 0, 0, 0, zone), true
}

func (c *checker) run(ctx context.Context, in <-chan *rowBatch, freeRows chan<- *rowBatch, out chan<- *Batch, freeOut <-chan *Batch, res *Result) error {
	take := func() error {
		select {
		case c.cur = <-freeOut:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.cur.Data = c.cur.Data[:0]
		c.cur.Messages = c.cur.Messages[:0]
		c.cur.First = c.published
		c.cur.After = ""
		c.cur.Rows = 0
		return nil
	}
	flush := func(after string, rows int64) error {
		c.cur.After, c.cur.Rows = after, rows
		if c.p.publish {
			c.cur.published = res.Published
			c.cur.variants = maps.Clone(res.Variants)
		}
		// Bodies are sliced after encoding finished: Data may have
		// moved while it grew.
		off := 0
		for i := range c.cur.Messages {
			n := len(c.cur.Messages[i].Body)
			c.cur.Messages[i].Body = c.cur.Data[off : off+n]
			c.cur.Messages[i].Key = message.KeyIn(c.cur.Messages[i].Body)
			off += n + 1
		}
		if err := c.failpoints.Hit(failpoint.AfterEncode); err != nil {
			return err
		}
		select {
		case out <- c.cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		return take()
	}
	if err := take(); err != nil {
		return err
	}
	var lastRow int64
	after := func() string {
		if c.p.csv != nil {
			return ""
		}
		return string(c.lastUser)
	}
	for rb := range in {
		for i := range rb.rows {
			cand := &rb.rows[i]
			// Cut batches only where a user (or CSV row) starts, so a
			// batch's position never splits a user's devices.
			if cand.Start {
				// The previous user's candidates are all seen.
				c.settle(res)
			}
			if cand.Start && len(c.cur.Messages) >= c.batchSize {
				if err := flush(after(), lastRow); err != nil {
					return err
				}
			}
			c.check(cand, res)
			if c.fail != nil {
				return c.fail
			}
			if c.p.publish && c.published > c.capacity {
				// Checked before the run where the audience's size is
				// known; this catches the rest before the batch is sent.
				return job.ThrottleOverflow("campaign.throttle", c.p.reference, c.p.job.Campaign.Throttle, c.published)
			}
			c.lastUser = append(c.lastUser[:0], cand.UserID...)
			lastRow = cand.Row
		}
		select {
		case freeRows <- rb:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.counted.Store(res.Published)
		if c.progress != nil {
			sk := res.Skipped
			c.skipped.Store(&sk)
			c.progress()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.settle(res)
	if c.fail != nil {
		return c.fail
	}
	return flush(after(), lastRow)
}

// check classifies one candidate and encodes its message when it is
// published.
func (c *checker) check(cand *candidate, res *Result) {
	c.candidates.Add(1)
	res.Candidates++
	c.lastBase = baseTime{}
	reason, variantID := c.classify(cand, res)
	if reason != "" {
		if c.trace != nil {
			c.traceOutcome(cand, reason, variantID, nil, false, c.lastBase, noLocale)
		}
		return
	}
}

// classify applies the checks in the contract's order and returns the skip
// reason, or "" when the candidate was published (and encoded), or is held
// as its user's best device so far (most_recent_device_only).
func (c *checker) classify(cand *candidate, res *Result) (reason, variantID string) {
	if cand.Unknown {
		res.Skipped.UnknownUser++
		return "unknown_user", ""
	}
	if cand.Previous {
		res.Skipped.PreviouslyReceived++
		return "previously_received", ""
	}
	if cand.NoConsent {
		res.Skipped.NoConsent++
		return "no_consent", ""
	}
	if cand.Capped {
		res.Skipped.FrequencyCapped++
		return "frequency_capped", ""
	}
	var base baseTime
	if c.tg != nil && c.tg.local != nil {
		base = c.tg.base(cand.Zone)
		c.lastBase = base
		if base.skip {
			res.Skipped.LocalTimePassed++
			return "local_time_passed", ""
		}
	}
	if c.p.split != nil {
		v := c.p.split.Of(cand.Bucket)
		if v != nil && v.Control {
			res.Skipped.ControlGroup++
			return "control_group", v.ID
		}
		if v != nil {
			variantID = v.ID
		}
	}
	dest, key, st := c.destination(cand)
	switch st {
	case contact.Missing:
		res.Skipped.NoContact++
		return "no_contact", variantID
	case contact.Invalid:
		res.Skipped.InvalidContact++
		return "invalid_contact", variantID
	}
	if c.tg != nil && c.tg.mostRecent {
		// Only the user's newest device that got this far goes on; it is
		// known once the user's last candidate is seen (settle).
		p := &c.pend
		if p.set && !newer(cand.DeviceUpdatedAt, cand.DeviceID, p.cand.DeviceUpdatedAt, p.cand.DeviceID) {
			res.Skipped.OlderDevice++
			return "older_device", variantID
		}
		if p.set {
			res.Skipped.OlderDevice++
			if c.trace != nil {
				c.traceOutcome(&p.cand, "older_device", p.variantID, nil, false, p.base, noLocale)
			}
		}
		p.hold(cand, variantID, base)
		return "", variantID
	}
	return c.deliver(cand, variantID, dest, key, base, res)
}

// settle delivers the held device of the user whose candidates ended
// (most_recent_device_only): it is the user's newest, and meets the
// de-duplication check after every earlier check, as the skip order says.
func (c *checker) settle(res *Result) {
	p := &c.pend
	if !p.set {
		return
	}
	p.set = false
	dest, key, _ := c.destination(&p.cand)
	if reason, variantID := c.deliver(&p.cand, p.variantID, dest, key, p.base, res); reason != "" && c.trace != nil {
		c.traceOutcome(&p.cand, reason, variantID, nil, false, p.base, noLocale)
	}
}

// deliver applies the de-duplication check to a candidate that passed every
// other one and publishes it.
func (c *checker) deliver(cand *candidate, variantID string, dest, key []byte, base baseTime, res *Result) (reason, _ string) {
	sum := c.enc.Key(key)
	fp := message.Fingerprint(sum)
	if !c.seen.Add(fp) {
		res.Skipped.DuplicateDestination++
		return "duplicate_destination", variantID
	}
	if c.collect {
		c.collected = append(c.collected, fp)
	}
	// An unpublishable message keeps its destination and its place in
	// the throttle order, as if the destination had dropped it: a
	// run that collects destinations, which encodes nothing, numbers it the
	// same way.
	k := c.published
	c.published++
	clock := &c.wave
	if c.tg != nil && c.tg.local != nil {
		clock = c.localWave(base.at)
	} else {
		clock.set(c.p.reference, c.p.job.Campaign.Throttle, k, c.nightRule, c.zone)
	}
	sendAt, deferred := clock.sendAtFor(cand.NightConsent)
	locale := noLocale
	if c.tg != nil && c.tg.localized != nil {
		locale = c.tg.locale(cand.Language)
	}
	var msg []byte
	if c.p.publish {
		if !c.alreadyPublished(cand) {
			start := len(c.cur.Data)
			c.cur.Data = c.enc.AppendLocale(c.cur.Data, sum, variantID, sendAt, &cand.Recipient, dest, locale)
			msg = c.cur.Data[start:]
			if c.limit > 0 && len(msg) > c.limit {
				c.cur.Data = c.cur.Data[:start]
				res.Unpublishable.MessageTooLarge++
				return ReasonMessageTooLarge, variantID
			}
			c.cur.Messages = append(c.cur.Messages, Message{Body: msg})
			c.cur.Data = append(c.cur.Data, '\n')
		} else if c.limit > 0 {
			// Measured again so a resumed run skips exactly what the
			// first attempt skipped.
			c.scratch = c.enc.AppendLocale(c.scratch[:0], sum, variantID, sendAt, &cand.Recipient, dest, locale)
			if len(c.scratch) > c.limit {
				res.Unpublishable.MessageTooLarge++
				return ReasonMessageTooLarge, variantID
			}
		}
	}
	res.Published++
	if variantID != "" {
		res.Variants[variantID]++
	}
	// Deferral is counted for every message, published now or by an
	// earlier attempt, so a resumed run reports what an uninterrupted
	// one does.
	if deferred {
		res.Deferred++
	}
	if c.trace != nil {
		c.traceOutcome(cand, "published", variantID, msg, deferred, base, locale)
	}
	return "", variantID
}

// localWave numbers the next message of base time at and returns its
// wave's clock: with local_time, waves are counted per base time (section
// 11), then the night-time rule applies to each wave's send_at.
func (c *checker) localWave(at time.Time) *waveClock {
	w := c.waves[at.Unix()]
	if w == nil {
		w = &waveClock{wave: -1}
		c.waves[at.Unix()] = w
	}
	k := w.n
	w.n++
	if !w.set(at, c.p.job.Campaign.Throttle, k, c.nightRule, c.zone) && c.fail == nil {
		c.fail = job.Rejectf("campaign.delivery.local_time", "a message's send_at would be after %s", job.MaxTime.Format(time.RFC3339))
	}
	return w
}

// destination returns the published destination and its de-duplication key,
// read and checked as the channel's table says: from the CSV row's contact
// column, or the user's or device's column.
func (c *checker) destination(cand *candidate) (dest, key []byte, st contact.Status) {
	d := c.dest
	var raw []byte
	switch {
	case d.Device && !cand.HasDevice:
		return nil, nil, contact.Missing
	case d.Device:
		raw = cand.Token
	case cand.CSV != nil:
		raw = cand.Contact
	default:
		raw = c.userContact(&cand.Recipient)
	}
	return d.Check(raw, raw == nil)
}

// userContacts read a user's contact column (channel.Destination.Column)
// from a database candidate; a test checks that every destination of the
// channel table that is not a device has one.
var userContacts = map[string]func(*message.Recipient) []byte{
	"email":        func(r *message.Recipient) []byte { return r.Email },
	"phone_number": func(r *message.Recipient) []byte { return r.Phone },
}
