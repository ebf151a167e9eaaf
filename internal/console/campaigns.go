package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/scheduler"
)

// nextOccurrences is how many coming occurrences a campaign shows.
const nextOccurrences = 3

// staleShown is how many recorded stale occurrences the page lists.
const staleShown = 50

type campaignRow struct {
	scheduler.Campaign
	Name     string
	Channel  string
	Schedule string
	Zone     string
	Next     []time.Time
	// Bad is the error of a schedule that does not parse.
	Bad    string
	Latest *ledger.Run
}

type campaignsView struct {
	Campaigns []campaignRow
	Stale     []scheduler.Occurrence
}

func (c *Console) campaignsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	list, err := c.campaigns.List(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	now := c.cfg.Now()
	var v campaignsView
	for _, cp := range list {
		row := campaignRow{Campaign: cp}
		var inner struct {
			Name    string `json:"name"`
			Channel string `json:"channel"`
		}
		_ = json.Unmarshal(cp.Campaign, &inner)
		row.Name, row.Channel = inner.Name, inner.Channel
		var sch scheduler.Schedule
		_ = json.Unmarshal(cp.Schedule, &sch)
		row.Schedule = describe(sch)
		if p, err := scheduler.ParseSchedule(cp.Schedule); err != nil {
			row.Bad = err.Error()
		} else {
			row.Zone = p.Location().String()
			if cp.Status == scheduler.Active {
				row.Next = p.Next(cp.CreatedAt, now, nextOccurrences)
			}
		}
		latest, err := c.led.LatestOf(ctx, cp.ID)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			c.fail(w, r, err)
			return
		}
		row.Latest = latest
		v.Campaigns = append(v.Campaigns, row)
	}
	if v.Stale, err = c.campaigns.Recorded(ctx, "stale", staleShown); err != nil {
		c.fail(w, r, err)
		return
	}
	p := c.newPage(r, "Campaigns", "campaigns")
	p.Data = v
	c.render(w, r, "campaigns", http.StatusOK, p)
}

// describe says a schedule in words, in its own time zone's terms.
func describe(s scheduler.Schedule) string {
	var b strings.Builder
	switch s.Kind {
	case scheduler.Immediate:
		b.WriteString("once, when added")
	case scheduler.Once:
		b.WriteString("once on " + s.Date + " at " + s.Time)
	case scheduler.Daily:
		b.WriteString("daily at " + s.Time)
	case scheduler.Weekly:
		b.WriteString("weekly on " + strings.Join(s.Weekdays, ", ") + " at " + s.Time)
	default:
		b.WriteString(string(s.Kind))
	}
	if s.StartDate != "" {
		b.WriteString(", from " + s.StartDate)
	}
	if s.EndDate != "" {
		b.WriteString(", until " + s.EndDate)
	}
	return b.String()
}

// controlCampaign is POST /campaigns/{id}/pause|resume|end.
func (c *Console) controlCampaign(w http.ResponseWriter, r *http.Request) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	status, ok := map[string]string{"pause": scheduler.Paused, "resume": scheduler.Active, "end": scheduler.Ended}[verb]
	if !ok {
		c.refuse(w, r, http.StatusNotFound, "unknown campaign action "+verb)
		return
	}
	if err := c.campaigns.SetStatus(r.Context(), id, status); err != nil {
		c.refuse(w, r, http.StatusConflict, err.Error())
		return
	}
	c.log.Info("console: campaign "+verb, "campaign_id", id)
	http.Redirect(w, r, c.doneURL("/campaigns", "campaign "+id+": "+status), http.StatusSeeOther)
}
