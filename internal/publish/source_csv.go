package publish

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/contact"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
)

const csvPath = "campaign.audience.url"

// csvChunk is how many CSV rows of a push audience are looked up in the
// database at once (one query per chunk, never one per row).
const csvChunk = 2000

// csvChunkBytes also ends a chunk, so wide rows cannot make one large.
const csvChunkBytes = 4 << 20

// csvPlan is a validated CSV audience.
type csvPlan struct {
	url    string
	header []string
	// contactCol is the email or phone_number column; -1 for device
	// channels, whose recipients are the devices of userCol's users.
	contactCol int
	// userCol is the user_id column, -1 when absent.
	userCol int
	// consentCol and nightCol are the advertising consent columns, -1
	// when absent (docs/governance.md): the columns that
	// campaign.advertising's consent and night_consent name.
	consentCol, nightCol int
	// zoneCol and langCol are the columns that delivery's local_time
	// time_zone and localized_messages property name, -1 when absent or
	// off (docs/delivery.md).
	zoneCol, langCol int
	// capped holds the file's user_ids whose users are at the frequency
	// cap; nil without a cap.
	capped map[string]struct{}
	rows   int64
}

// csvConsent reports whether a (trimmed) consent cell is consent: "true"
// in any ASCII case.
func csvConsent(v string) bool { return strings.EqualFold(v, "true") }

// governance sets a CSV row's consent and cap flags on cand.
func (cp *csvPlan) governance(cand *candidate, rec []string) {
	if cp.consentCol >= 0 {
		cand.NoConsent = !csvConsent(rec[cp.consentCol])
	}
	if cp.nightCol >= 0 {
		cand.NightConsent = csvConsent(rec[cp.nightCol])
	}
	if cp.capped != nil && cp.userCol >= 0 {
		_, cand.Capped = cp.capped[rec[cp.userCol]]
	}
}

// targeting sets a CSV row's time zone and language cells on cand, in b's
// arena (a push row's candidates come from the database, whose columns a
// CSV audience never reads for these).
func (cp *csvPlan) targeting(b *rowBatch, cand *candidate, rec []string) {
	cand.Zone, cand.Language = nil, nil
	if cp.zoneCol >= 0 {
		cand.Zone = b.copy([]byte(rec[cp.zoneCol]))
	}
	if cp.langCol >= 0 {
		cand.Language = b.copy([]byte(rec[cp.langCol]))
	}
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	return cr
}

// csvRows reads a CSV audience's records within its limits.
type csvRows struct {
	url  string
	in   *csvInput
	cr   *csv.Reader
	read int64 // records read, the header included
	off  int64 // input offset after the last record
}

// openCSV opens a CSV audience bounded by the run's size cap.
func (r *Runner) openCSV(ctx context.Context, url string) (*csvRows, io.Closer, error) {
	rc, err := r.cfg.Open(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	in := &csvInput{r: rc, max: r.cfg.MaxCSVBytes}
	return &csvRows{url: url, in: in, cr: newCSVReader(in)}, rc, nil
}

// next returns the next record (reused by the following call), io.EOF at
// the end, or a rejection.
func (c *csvRows) next() ([]string, error) {
	rec, err := c.cr.Read()
	switch {
	case errors.Is(err, errCSVTooLarge):
		return nil, job.Rejectf(csvPath, "%s: over the limit of %d bytes (SEGPUB_CSV_MAX_BYTES)", c.url, c.in.max)
	case errors.Is(err, errCSVRecord):
		return nil, c.recordTooLarge()
	case err != nil:
		return nil, csvError(c.url, err)
	}
	off := c.cr.InputOffset()
	if off-c.off > MaxCSVRecordBytes {
		return nil, c.recordTooLarge()
	}
	c.read++
	c.off = off
	c.in.record = 0
	return rec, nil
}

func (c *csvRows) recordTooLarge() error {
	return job.Rejectf(csvPath, "%s: record %d is over %d bytes", c.url, c.read+1, MaxCSVRecordBytes)
}

// prepareCSV reads the whole file once before anything is published: a
// malformed row halfway through must reject the job, not cut a campaign in
// two.
func (r *Runner) prepareCSV(ctx context.Context, p *plan) (*csvPlan, error) {
	url := p.job.Campaign.Audience.URL
	rows, rc, err := r.openCSV(ctx, url)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	head, err := rows.next()
	if errors.Is(err, io.EOF) {
		return nil, job.Rejectf(csvPath, "%s: empty file, want a header row", url)
	}
	if err != nil {
		return nil, err
	}
	cp := &csvPlan{url: url, header: make([]string, len(head)), contactCol: -1, userCol: -1, consentCol: -1, nightCol: -1, zoneCol: -1, langCol: -1}
	camp := p.job.Campaign
	// Columns named by the job: "" names none.
	var consentName, nightName, zoneName, langName string
	if a := camp.Advertising; a != nil {
		consentName, nightName = a.Consent, a.NightConsent
	}
	if d := camp.Delivery; d != nil {
		if d.LocalTime != nil {
			zoneName = d.LocalTime.ZoneKey
		}
		if d.Localized != nil {
			langName = d.Localized.Property
		}
	}
	seen := map[string]bool{}
	for i, h := range head {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheet exports start with a BOM
		}
		h = string(contact.Trim([]byte(h)))
		if h == "" {
			return nil, job.Rejectf(csvPath, "%s: header column %d has no name", url, i+1)
		}
		if seen[h] {
			return nil, job.Rejectf(csvPath, "%s: header names column %q twice", url, h)
		}
		seen[h] = true
		cp.header[i] = h
		// One column may serve several roles (a job may name user_id as
		// its consent column), so each is matched on its own.
		if h == "user_id" {
			cp.userCol = i
		}
		if h == contactColumn(p.job.Campaign.Channel) {
			cp.contactCol = i
		}
		if h == consentName {
			cp.consentCol = i
		}
		if h == nightName {
			cp.nightCol = i
		}
		if h == zoneName {
			cp.zoneCol = i
		}
		if h == langName {
			cp.langCol = i
		}
	}
	ch := p.job.Campaign.Channel
	switch {
	case ch.IsDevice() && cp.userCol < 0:
		return nil, job.Rejectf(csvPath, "%s: a %s audience needs a user_id column", url, ch)
	case !ch.IsDevice() && cp.contactCol < 0:
		return nil, job.Rejectf(csvPath, "%s: a %s audience needs a %s column", url, ch, contactColumn(ch))
	}
	if camp.Advertising != nil && cp.consentCol < 0 {
		return nil, job.Rejectf(csvPath, "%s: campaign.advertising.consent names the consent column %q, which the file does not have", url, consentName)
	}
	var ids []string
	if camp.FrequencyCap != nil {
		if cp.userCol < 0 {
			return nil, job.Rejectf(csvPath, "%s: campaign.frequency_cap needs a user_id column in the file", url)
		}
		ids = []string{}
	}
	device := ch.IsDevice()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := rows.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		cp.rows++
		if device || ids != nil {
			// Looked up in the database: push recipients, and users to
			// count against the frequency cap.
			if err := checkUserID(url, rows.cr, rec[cp.userCol]); err != nil {
				return nil, err
			}
		}
		if ids != nil {
			if id := string(contact.Trim([]byte(rec[cp.userCol]))); id != "" {
				ids = append(ids, id)
			}
		}
	}
	if ids != nil {
		if cp.capped, err = r.cappedIDs(ctx, p, ids); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// cappedIDs looks up, with one query, which of a CSV file's user_ids belong
// to users at the frequency cap.
func (r *Runner) cappedIDs(ctx context.Context, p *plan, ids []string) (map[string]struct{}, error) {
	spec := p.spec
	spec.FrequencyCap = p.job.Campaign.FrequencyCap
	q := audience.CappedExternalIDs(spec, ids)
	rows, err := r.cfg.Pool.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("look up frequency caps of csv audience: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up frequency caps of csv audience: %w", err)
	}
	capped := make(map[string]struct{}, len(found))
	for _, id := range found {
		capped[id] = struct{}{}
	}
	return capped, nil
}

// checkUserID rejects a user_id that PostgreSQL cannot take as text (it is
// looked up in the database): not UTF-8, or holding a NUL.
func checkUserID(url string, cr *csv.Reader, id string) error {
	if utf8.ValidString(id) && !strings.ContainsRune(id, 0) {
		return nil
	}
	line, _ := cr.FieldPos(0)
	return job.Rejectf(csvPath, "%s: line %d: user_id is not valid UTF-8 text without NUL characters", url, line)
}

// contactColumn is the CSV column that holds a channel's destination: ""
// for device channels, whose rows name a user_id instead.
func contactColumn(ch job.Channel) string {
	if d := ch.Destination(); d != nil {
		return d.CSVColumn
	}
	return ""
}

func csvError(url string, err error) error {
	if job.IsRejection(err) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return job.Rejectf(csvPath, "%s: line %d: %v", url, pe.StartLine, pe.Err)
	}
	return fmt.Errorf("read csv audience %s: %w", url, err)
}

// streamCSV streams the file's rows in file order.
func (r *Runner) streamCSV(ctx context.Context, p *plan, out chan<- *rowBatch, free <-chan *rowBatch) error {
	cp := p.csv
	rows, rc, err := r.openCSV(ctx, cp.url)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := rows.next(); err != nil {
		return err
	}
	device := p.job.Campaign.Channel.IsDevice()
	b, err := takeRows(ctx, free)
	if err != nil {
		return err
	}
	var chunk [][]string
	var chunkBytes int
	var n int64
	var rowJSON []byte
	for {
		rec, err := rows.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n++
		if n > cp.rows {
			return fmt.Errorf("csv audience %s changed while it was read: more than %d rows", cp.url, cp.rows)
		}
		for i := range rec {
			rec[i] = string(contact.Trim([]byte(rec[i])))
		}
		if device {
			chunk = append(chunk, append([]string(nil), rec...))
			for _, v := range rec {
				chunkBytes += len(v)
			}
			if len(chunk) == csvChunk || chunkBytes >= csvChunkBytes {
				if b, err = r.emitDeviceChunk(ctx, p, chunk, n-int64(len(chunk)), b, out, free); err != nil {
					return err
				}
				chunk, chunkBytes = chunk[:0], 0
			}
			continue
		}
		rowJSON = message.AppendCSVRow(rowJSON[:0], cp.header, rec)
		b.rows = append(b.rows, candidate{Start: true, Row: n})
		c := &b.rows[len(b.rows)-1]
		c.CSV = b.copy(rowJSON)
		c.Contact = b.copy([]byte(rec[cp.contactCol]))
		cp.governance(c, rec)
		cp.targeting(b, c, rec)
		if cp.userCol >= 0 && rec[cp.userCol] != "" {
			c.ExternalUserID = b.copy([]byte(rec[cp.userCol]))
		}
		if b.full() {
			if err := sendRows(ctx, out, b); err != nil {
				return err
			}
			if b, err = takeRows(ctx, free); err != nil {
				return err
			}
		}
	}
	if len(chunk) > 0 {
		if b, err = r.emitDeviceChunk(ctx, p, chunk, n-int64(len(chunk)), b, out, free); err != nil {
			return err
		}
	}
	if n != cp.rows {
		return fmt.Errorf("csv audience %s changed while it was read: %d rows, then %d", cp.url, cp.rows, n)
	}
	if len(b.rows) > 0 {
		return sendRows(ctx, out, b)
	}
	return nil
}

// emitDeviceChunk looks up the users of a chunk of rows with one query and
// emits, row by row in file order, each user's devices of the channel (or
// one device-less candidate, or an unknown one).
func (r *Runner) emitDeviceChunk(ctx context.Context, p *plan, chunk [][]string, firstRow int64, b *rowBatch,
	out chan<- *rowBatch, free <-chan *rowBatch) (*rowBatch, error) {
	cp := p.csv
	ids := make([]string, 0, len(chunk))
	for _, rec := range chunk {
		if id := rec[cp.userCol]; id != "" {
			ids = append(ids, id)
		}
	}
	spec := p.spec
	spec.Audience = job.Audience{Type: job.AudienceAll}
	spec.ExternalIDs = ids
	q, err := audience.Compile(spec)
	if err != nil {
		return b, err
	}
	// The chunk's users are few (csvChunk rows at most), so they are
	// collected before being re-ordered into file order.
	byExt := map[string][]candidate{}
	lookup := newRowBatch()
	sub := make(chan *rowBatch, 1)
	subFree := make(chan *rowBatch, 1)
	done := make(chan error, 1)
	go func() {
		defer close(sub)
		var users int64
		done <- r.streamDB(ctx, q, sub, subFree, &users)
	}()
	subFree <- lookup
	for rb := range sub {
		for _, c := range rb.rows {
			ext := string(c.ExternalUserID)
			byExt[ext] = append(byExt[ext], c)
		}
		fresh := newRowBatch()
		subFree <- fresh
	}
	if err := <-done; err != nil {
		return b, err
	}
	var rowJSON []byte
	for i, rec := range chunk {
		rowJSON = message.AppendCSVRow(rowJSON[:0], cp.header, rec)
		row := firstRow + int64(i) + 1
		cands, ok := byExt[rec[cp.userCol]]
		if !ok {
			b.rows = append(b.rows, candidate{Unknown: true, Start: true, Row: row})
			b.rows[len(b.rows)-1].ExternalUserID = b.copy([]byte(rec[cp.userCol]))
			continue
		}
		for k, c := range cands {
			c.Start = k == 0
			c.Row = row
			cp.governance(&c, rec)
			b.rows = append(b.rows, copyCandidate(b, c))
			b.rows[len(b.rows)-1].CSV = b.copy(rowJSON)
			cp.targeting(b, &b.rows[len(b.rows)-1], rec)
		}
		if b.full() {
			if err := sendRows(ctx, out, b); err != nil {
				return b, err
			}
			if b, err = takeRows(ctx, free); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// copyCandidate copies c's byte slices into b's arena.
func copyCandidate(b *rowBatch, c candidate) candidate {
	r := &c.Recipient
	for _, f := range []*[]byte{&r.UserID, &r.ExternalUserID, &r.Email, &r.Phone, &r.Properties,
		&r.DeviceID, &r.ExternalDeviceID, &r.Token, &r.Platform, &r.OSVersion, &r.AppVersion, &r.SDKVersion, &r.SDKType, &c.Contact} {
		*f = b.copy(*f)
	}
	return c
}
