package seed

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
)

// Generator names a shape of data. The benchmark measures more than one so
// that the read path is not tuned to a single distribution of devices,
// token lengths, property widths and id shapes.
type Generator string

const (
	// Uniform is the first generator: 32-hex-digit ids, 0 to 4 devices a
	// user (most have one), 64-hex-digit tokens, five or six properties.
	Uniform Generator = "uniform"
	// Skewed has ids in other shapes (UUIDs and decimal legacy ids for
	// users, base64url for devices, so byte order and a locale's order
	// disagree), devices per user skewed (45% none, a long tail with 10 to
	// 40), platform-shaped tokens (64 hex for iOS, 163 characters for FCM,
	// longer web-push endpoints) and properties from empty to over 3 KB.
	Skewed Generator = "skewed"
)

// shape is what differs between generators: the ids, the user row and the
// device rows. Events and deliveries are generated alike for all of them,
// keyed by the shape's user ids.
type shape struct {
	userID  func(g *gen, i int) string
	user    func(g *gen, w *bufio.Writer, i int) int
	devices func(g *gen, w *bufio.Writer, i int) int
}

var shapes = map[Generator]shape{
	Uniform: {userID: (*gen).UserID, user: (*gen).user, devices: (*gen).devices},
	Skewed:  {userID: (*gen).skewedUserID, user: (*gen).skewedUser, devices: (*gen).skewedDevices},
}

// Generators lists the generators' names, sorted.
func Generators() []string {
	out := make([]string, 0, len(shapes))
	for name := range shapes {
		out = append(out, string(name))
	}
	slices.Sort(out)
	return out
}

// ParseGenerator checks a generator's name ("" is Uniform).
func ParseGenerator(name string) (Generator, error) {
	if name == "" {
		return Uniform, nil
	}
	if _, ok := shapes[Generator(name)]; !ok {
		return "", fmt.Errorf("unknown generator %q: one of %s", name, strings.Join(Generators(), ", "))
	}
	return Generator(name), nil
}
