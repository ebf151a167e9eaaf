package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// The seed pattern: the query pattern of the Node.js
// publisher segpub replaces, reproduced so the benchmark can measure the
// difference on the same data in the same run. It is deliberately what
// segpub does not do, and runs only inside `segpub bench`:
//
//   - users paged with ORDER BY notifly_user_id LIMIT 5000 OFFSET n;
//   - for each page, one device query with an IN list of the page's ids
//     written as literals (the N+1 pattern);
//   - id lists as IN lists of 5000 literals per chunk;
//   - every row decoded into generic maps and kept in memory until the
//     whole audience has been read, then one message per device.
//
// Ids come from the database or the benchmark's own job and are quoted
// with quoteLiteral; no input from outside the benchmark reaches these
// statements.

const baselinePage = 5000

type baselineUser struct {
	id, external, email, phone *string
	props                      map[string]any
	bucket                     int
}

type baselineDevice map[string]any

// Baseline runs a push job (audience all or user_ids, no conditions) the
// seed's way and writes one JSON message per line to w. It returns the
// number of messages.
func Baseline(ctx context.Context, pool *pgxpool.Pool, j *job.Job, w io.Writer) (int64, error) {
	t, err := schema.For(j.ProjectID)
	if err != nil {
		return 0, err
	}
	if j.Campaign.Channel != job.ChannelPush {
		return 0, fmt.Errorf("seed pattern: channel %s: only push_notification is reproduced", j.Campaign.Channel)
	}
	a := j.Campaign.Audience
	var users []*baselineUser
	var devices []baselineDevice
	const userCols = `notifly_user_id, external_user_id, email, phone_number, user_properties, random_bucket_number`
	page := func(sql string) (int, error) {
		rows, err := pool.Query(ctx, sql)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			u := &baselineUser{}
			var props []byte
			if err := rows.Scan(&u.id, &u.external, &u.email, &u.phone, &props, &u.bucket); err != nil {
				return 0, err
			}
			if err := json.Unmarshal(props, &u.props); err != nil {
				return 0, fmt.Errorf("user %s properties: %w", *u.id, err)
			}
			users = append(users, u)
			ids = append(ids, *u.id)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return 0, nil
		}
		// One device query per page.
		drows, err := pool.Query(ctx, `SELECT notifly_device_id, notifly_user_id, external_device_id, device_token, platform,
os_version, app_version, sdk_version, sdk_type FROM `+t.Device+` WHERE notifly_user_id IN (`+literalList(ids)+`)`)
		if err != nil {
			return 0, err
		}
		defer drows.Close()
		for drows.Next() {
			vals, err := drows.Values()
			if err != nil {
				return 0, err
			}
			d := baselineDevice{}
			for i, f := range drows.FieldDescriptions() {
				d[f.Name] = vals[i]
			}
			devices = append(devices, d)
		}
		return len(ids), drows.Err()
	}
	switch a.Type {
	case job.AudienceAll:
		for offset := 0; ; offset += baselinePage {
			n, err := page(fmt.Sprintf(`SELECT %s FROM %s ORDER BY notifly_user_id LIMIT %d OFFSET %d`, userCols, t.User, baselinePage, offset))
			if err != nil {
				return 0, fmt.Errorf("seed pattern: page at offset %d: %w", offset, err)
			}
			if n < baselinePage {
				break
			}
		}
	case job.AudienceUserIDs:
		for i := 0; i < len(a.UserIDs); i += baselinePage {
			chunk := a.UserIDs[i:min(i+baselinePage, len(a.UserIDs))]
			if _, err := page(`SELECT ` + userCols + ` FROM ` + t.User + ` WHERE external_user_id IN (` + literalList(chunk) + `)`); err != nil {
				return 0, fmt.Errorf("seed pattern: id chunk %d: %w", i/baselinePage, err)
			}
		}
	default:
		return 0, fmt.Errorf("seed pattern: audience type %s is not reproduced", a.Type)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Everything is in memory; now the messages.
	byUser := map[string][]baselineDevice{}
	for _, d := range devices {
		uid, _ := d["notifly_user_id"].(string)
		byUser[uid] = append(byUser[uid], d)
	}
	seen := map[string]bool{}
	bw := bufio.NewWriter(w)
	var n int64
	for _, u := range users {
		for _, d := range byUser[*u.id] {
			platform, _ := d["platform"].(string)
			token, _ := d["device_token"].(string)
			token = strings.TrimSpace(token)
			if (platform != "ios" && platform != "android") || token == "" || seen[token] {
				continue
			}
			seen[token] = true
			msg := map[string]any{
				"campaign_id": j.Campaign.ID, "channel": string(j.Campaign.Channel), "request_id": j.RequestID,
				"notifly_user_id": *u.id, "external_user_id": u.external, "device_token": token, "platform": platform,
				"message": j.Campaign.Message, "personalization": map[string]any{"user": u.props, "device": d},
			}
			line, err := json.Marshal(msg)
			if err != nil {
				return n, err
			}
			bw.Write(line)
			bw.WriteByte('\n')
			n++
		}
	}
	return n, bw.Flush()
}

func literalList(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteLiteral(id))
	}
	return b.String()
}

// quoteLiteral writes s as an SQL string literal (standard_conforming_strings).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
