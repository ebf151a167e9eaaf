package httpserve

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every phase of a request is bounded.
func TestServerBounds(t *testing.T) {
	t.Parallel()
	s := Server(http.NotFoundHandler(), 0)
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout != DefaultWriteTimeout || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("unbounded: %+v", s)
	}
	if s := Server(http.NotFoundHandler(), 3*time.Minute); s.WriteTimeout != 3*time.Minute {
		t.Fatalf("write bound %s", s.WriteTimeout)
	}
}

// Through a real listener: a header block over the bound is refused, and
// a client that stops sending its header is cut off.
func TestServerRefusesHostileClients(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Server(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }), 0)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 2*MaxHeaderBytes))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized header: %v %v", resp, err)
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET / HTTP/1.1\r\nHost: x\r\n")
	_ = slow.SetReadDeadline(time.Now().Add(ReadHeaderTimeout + 10*time.Second))
	if _, err := slow.Read(make([]byte, 1024)); err == nil {
		// The server may answer 408 before closing; the next read ends.
		if _, err := slow.Read(make([]byte, 1024)); err == nil {
			t.Fatal("a client that never finished its header is still connected")
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept a stalled header open past %s", ReadHeaderTimeout)
	}
}
