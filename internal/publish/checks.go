package publish

import (
	"bytes"
	"context"
	"sync/atomic"

	"github.com/segpub/segpub/internal/contact"
	"github.com/segpub/segpub/internal/dedup"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
)

// checker applies the contract's checks to candidates in order, giving each
// exactly one skip reason or publishing it: unknown_user,
// previously_received, control_group, no_contact, invalid_contact,
// duplicate_destination. Candidates arrive in (notifly_user_id,
// notifly_device_id) order (file order for CSV), so the first candidate of a
// destination is the one the contract says wins.
type checker struct {
	p         *plan
	channel   job.Channel
	enc       *message.Encoder
	seen      *dedup.Set
	batchSize int
	// failpoints is nil outside tests.
	failpoints *failpoint.Set

	// published counts messages so far; it numbers throttle waves.
	published int64
	// wave caches the formatted send_at of the current throttle wave.
	wave       int64
	waveSendAt []byte
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
	// scan collects the fingerprints of published destinations instead of
	// encoding messages (a partition's scan phase).
	scan    bool
	scanned []uint64
}

func (c *checker) traceOutcome(cand *candidate, reason, variantID string, msg []byte) {
	c.trace(Outcome{UserID: string(cand.UserID), ExternalUserID: string(cand.ExternalUserID), DeviceID: string(cand.DeviceID),
		Reason: reason, VariantID: variantID, Message: msg})
}

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

func newChecker(p *plan, batchSize int) *checker {
	c := &checker{
		p:         p,
		channel:   p.job.Campaign.Channel,
		enc:       message.NewEncoder(p.job),
		seen:      dedup.New(int(p.estimate)),
		batchSize: batchSize,
		wave:      -1,
		capacity:  job.ThrottleCapacity(p.reference, p.job.Campaign.Throttle),
	}
	return c
}

func (c *checker) sendAt(k int64) []byte {
	th := c.p.job.Campaign.Throttle
	w := int64(0)
	if th != nil {
		w = k / th.MaxPerInterval
	}
	if w != c.wave || c.waveSendAt == nil {
		// Past the last wave that fits (ok false) the message is never
		// sent: run stops at it. Until then the time is what it would be.
		at, _ := job.SendAt(c.p.reference, th, k)
		c.waveSendAt = message.AppendSendAt(c.waveSendAt[:0], at)
		c.wave = w
	}
	return c.waveSendAt
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
		// Bodies are sliced after encoding finished: Data may have
		// moved while it grew.
		off := 0
		for i := range c.cur.Messages {
			n := len(c.cur.Messages[i].Body)
			c.cur.Messages[i].Body = c.cur.Data[off : off+n]
			c.cur.Messages[i].Key = c.cur.Data[off+20 : off+84]
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
			if cand.Start && len(c.cur.Messages) >= c.batchSize {
				if err := flush(after(), lastRow); err != nil {
					return err
				}
			}
			c.check(cand, res)
			if c.p.publish && !c.scan && c.published > c.capacity {
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
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush(after(), lastRow)
}

// check classifies one candidate and encodes its message when it is
// published.
func (c *checker) check(cand *candidate, res *Result) {
	c.candidates.Add(1)
	res.Candidates++
	reason, variantID := c.classify(cand, res)
	if reason != "" {
		if c.trace != nil {
			c.traceOutcome(cand, reason, variantID, nil)
		}
		return
	}
}

// classify applies the checks in the contract's order and returns the skip
// reason, or "" when the candidate was published (and encoded).
func (c *checker) classify(cand *candidate, res *Result) (reason, variantID string) {
	if cand.Unknown {
		res.Skipped.UnknownUser++
		return "unknown_user", ""
	}
	if cand.Previous {
		res.Skipped.PreviouslyReceived++
		return "previously_received", ""
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
	sum := c.enc.Key(key)
	fp := message.Fingerprint(sum)
	if !c.seen.Add(fp) {
		res.Skipped.DuplicateDestination++
		return "duplicate_destination", variantID
	}
	if c.scan {
		c.scanned = append(c.scanned, fp)
	}
	k := c.published
	c.published++
	res.Published++
	if variantID != "" {
		res.Variants[variantID]++
	}
	var msg []byte
	if c.p.publish && !c.alreadyPublished(cand) {
		start := len(c.cur.Data)
		c.cur.Data = c.enc.Append(c.cur.Data, sum, variantID, c.sendAt(k), &cand.Recipient, dest)
		msg = c.cur.Data[start:]
		c.cur.Messages = append(c.cur.Messages, Message{Body: msg})
		c.cur.Data = append(c.cur.Data, '\n')
	}
	if c.trace != nil {
		c.traceOutcome(cand, "published", variantID, msg)
	}
	return "", variantID
}

// destination returns the published destination and its de-duplication key.
func (c *checker) destination(cand *candidate) (dest, key []byte, st contact.Status) {
	switch {
	case c.channel == job.ChannelEmail:
		raw, null := cand.Email, cand.Email == nil
		if cand.CSV != nil {
			raw, null = cand.Contact, cand.Contact == nil
		}
		return contact.Email(raw, null)
	case c.channel.IsPhone():
		raw, null := cand.Phone, cand.Phone == nil
		if cand.CSV != nil {
			raw, null = cand.Contact, cand.Contact == nil
		}
		dest, st = contact.Phone(raw, null)
		return dest, dest, st
	default:
		if !cand.HasDevice {
			return nil, nil, contact.Missing
		}
		dest, st = contact.Token(cand.Token, cand.Token == nil)
		return dest, dest, st
	}
}
