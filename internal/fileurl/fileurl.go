// Package fileurl reads the local path of a file:// URL, for every place a
// setting or a job names a local file (channel outputs, run events, CSV
// audiences). A file URL names a host before its path (RFC 8089), so
// file://out/x.ndjson is host "out" and path /x.ndjson, not the relative
// path out/x.ndjson: hosts and relative paths are refused, with the URL to
// write instead.
package fileurl

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Parse returns the absolute path a file:// URL names and its query.
func Parse(rawURL string) (path string, query url.Values, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("parse %q: %w", rawURL, err)
	}
	if u.Scheme != "file" {
		return "", nil, errors.New("not a file:// URL")
	}
	rel := ""
	switch {
	case u.Opaque != "":
		rel = u.Opaque
	case u.Host != "":
		return "", nil, fmt.Errorf("file URLs name no host (file:///path); got host %q: want %s", u.Host, hint(u.Host+u.Path))
	case u.Path == "":
		return "", nil, errors.New("no path: want file:///absolute/path")
	case !strings.HasPrefix(u.Path, "/"):
		rel = u.Path
	default:
		return u.Path, u.Query(), nil
	}
	return "", nil, fmt.Errorf("file URLs take an absolute path: want %s", hint(rel))
}

// hint is the URL of rel made absolute.
func hint(rel string) string {
	if abs, err := filepath.Abs(rel); err == nil {
		return "file://" + abs
	}
	return "file:///absolute/path"
}
