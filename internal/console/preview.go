package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/segpub/segpub/internal/inspect"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/scheduler"
)

// previewSample is how many messages a preview shows.
const previewSample = 5

// maxParamText bounds a shown SQL parameter (an id list can be long).
const maxParamText = 200

type previewView struct {
	// Enabled: the console has the audience database.
	Enabled bool
	// Locked: a token is set and this browser is not signed in; Withheld:
	// no token is set, so people's data (sample messages, why, parameters)
	// is not shown to anyone.
	Locked, Withheld bool
	Campaigns        []scheduler.Campaign
	// The form's values.
	JobText, CampaignID, User string
	Ran                       bool
	Explain                   *inspect.Explanation
	Skipped                   []count
	Variants                  []count
	Params                    []string
	Sample                    []string
	Why                       *inspect.Answer
}

// previewForm is GET /preview: the form (?campaign=ID picks a campaign),
// which runs nothing.
func (c *Console) previewForm(w http.ResponseWriter, r *http.Request) {
	c.servePreview(w, r, false)
}

// previewPage is POST /preview (a picked campaign or a pasted job): what
// `segpub explain` prints, and `segpub why` for one user. With a token
// set it needs a signed-in session and its form's CSRF value.
func (c *Console) previewPage(w http.ResponseWriter, r *http.Request) {
	c.servePreview(w, r, true)
}

func (c *Console) servePreview(w http.ResponseWriter, r *http.Request, run bool) {
	ctx := r.Context()
	v := previewView{Enabled: c.cfg.Audience.Pool != nil, CampaignID: r.FormValue("campaign"), User: strings.TrimSpace(r.FormValue("user")),
		Withheld: c.cfg.Token == ""}
	if run {
		v.JobText = r.PostFormValue("job")
	}
	p := c.newPage(r, "Audience preview", "preview")
	v.Locked = c.cfg.Token != "" && !p.Personal
	if run && c.cfg.Token != "" {
		if ok, why := c.authorized(r); !ok {
			c.log.Warn("console: preview refused", "why", why)
			c.refuse(w, r, http.StatusForbidden, why)
			return
		}
	}
	list, err := c.campaigns.List(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Campaigns = list
	p.Data = &v
	status := http.StatusOK
	if run && v.Enabled && (v.JobText != "" || v.CampaignID != "") {
		select {
		case c.previews <- struct{}{}:
			err := c.preview(ctx, &v)
			<-c.previews
			if err != nil {
				p.Error = err.Error()
				status = http.StatusUnprocessableEntity
			}
		default:
			p.Error = "another preview is running; try again when it has finished"
			status = http.StatusTooManyRequests
		}
	}
	c.render(w, r, "preview", status, p)
}

func (c *Console) preview(ctx context.Context, v *previewView) error {
	body := []byte(v.JobText)
	if v.JobText == "" {
		var found *scheduler.Campaign
		for i := range v.Campaigns {
			if v.Campaigns[i].ID == v.CampaignID {
				found = &v.Campaigns[i]
			}
		}
		if found == nil {
			return fmt.Errorf("no campaign %q", v.CampaignID)
		}
		var err error
		if body, err = found.Job(c.cfg.Now()); err != nil {
			return err
		}
		// The form then shows the job it previewed, to edit; not without
		// a token: a campaign's audience may list people.
		if !v.Withheld {
			var indented strings.Builder
			var raw json.RawMessage = body
			b, _ := json.MarshalIndent(raw, "", "  ")
			indented.Write(b)
			v.JobText = indented.String()
		}
	}
	j, err := job.Parse(body)
	if err != nil {
		return fmt.Errorf("rejected: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PreviewTimeout)
	defer cancel()
	ex, err := inspect.Explain(ctx, c.cfg.Audience, j, previewSample)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	v.Ran, v.Explain = true, ex
	if ex.Result != nil {
		v.Skipped = skipCounts(ex.Result.Skipped)
		v.Variants = sortedCounts(ex.Result.Variants)
	}
	if v.Withheld {
		// Counts and SQL only: no token, no people's data (a plan and
		// the parameters may quote the job's user ids).
		ex.Plan, ex.Params = nil, nil
		return nil
	}
	for _, prm := range ex.Params {
		b, _ := json.Marshal(prm)
		s := string(b)
		if len(s) > maxParamText {
			s = s[:maxParamText] + "…"
		}
		v.Params = append(v.Params, s)
	}
	for _, m := range ex.Sample {
		v.Sample = append(v.Sample, indentJSON(m))
	}
	if v.User != "" {
		if v.Why, err = inspect.Why(ctx, c.cfg.Audience, j, v.User); err != nil {
			return fmt.Errorf("why: %w", err)
		}
	}
	return nil
}

// indentJSON is a message as people read it: indented, two spaces a level
// (as it is, when it is not JSON).
func indentJSON(m []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, m, "", "  "); err != nil {
		return string(m)
	}
	return b.String()
}
