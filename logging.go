package socketioguard

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

type logLevel int

const (
	levelOff logLevel = iota
	levelError
	levelWarn
	levelInfo
	levelDebug
)

var logLevelNames = []string{"off", "error", "warn", "info", "debug"}

func parseLogLevel(s string) (logLevel, bool) {
	for i, name := range logLevelNames {
		if s == name {
			return logLevel(i), true
		}
	}
	return levelOff, false
}

func (l logLevel) String() string { return logLevelNames[l] }

// logLinesPerSecond bounds what one middleware instance writes for one event
// id: Traefik shows stderr at its default level, and a broken hop can fail
// thousands of requests a second. Each id has a budget of its own, so that a
// client flooding one id cannot hide another (backend-not-socketio behind 50
// query-missing a second). What is held back is counted on the next line
// written for the same id. The ids are the guard's own, a fixed set.
const logLinesPerSecond = 5

// logger writes one logfmt line per event. Errors go to stderr (Traefik shows
// them at its default level); everything else to stdout (Traefik's DEBUG).
// It never writes cookies, Authorization, the query or the sid value.
//
// Under Traefik, Yaegi routes the plugin's fmt.Print output into Traefik's
// logger at DEBUG and the log package's writer into it at ERROR, while
// os.Stdout/os.Stderr would bypass Traefik's log (its level, format and
// file) altogether: hence printWriter and log.Writer(), which compiled Go
// resolves to plain stdout and stderr.
type logger struct {
	middleware string
	level      logLevel
	stdout     io.Writer
	stderr     io.Writer
	now        func() time.Time

	mu      sync.Mutex
	budgets map[string]*perSecondBudget // by event id
}

// perSecondBudget counts what was let through in the current one-second
// window: one event id's log lines, or the inspection's answers.
type perSecondBudget struct {
	windowStart time.Time
	inWindow    int
	suppressed  int
}

// event writes one line; message is the other side's own words, when the
// event quotes them (a server's refusal), else "".
//
// It is called on the requests' way, mostly for levels that are off: it only
// decides (under Yaegi a call allocates the whole called function's frame).
func (l *logger) event(level logLevel, event string, req *http.Request, hint, message string) {
	if level != levelOff && level <= l.level {
		l.write(level, event, req, hint, message)
	}
}

func (l *logger) write(level logLevel, event string, req *http.Request, hint, message string) {
	suppressed, ok := l.admit(event)
	if !ok {
		return
	}

	var b strings.Builder
	b.WriteString("socketioguard: level=")
	b.WriteString(level.String())
	writeField(&b, "middleware", l.middleware)
	writeField(&b, "event", event)
	if req != nil { // what the client sent, cut: one line stays short whatever the request
		writeField(&b, "method", shortened(req.Method))
		writeField(&b, "host", shortened(req.Host))
		writeField(&b, "path", shortened(req.URL.Path))
		writeField(&b, "remote", shortened(req.RemoteAddr))
	}
	if message != "" {
		writeField(&b, "message", message)
	}
	if hint != "" {
		writeField(&b, "hint", hint)
	}
	if suppressed > 0 {
		writeField(&b, "suppressed", strconv.Itoa(suppressed))
	}
	b.WriteByte('\n')

	out := l.stdout
	if level == levelError {
		out = l.stderr
	}
	_, _ = io.WriteString(out, b.String())
}

// admit applies the event's per-second budget and returns how many of its
// lines were held back since the last one written.
func (l *logger) admit(event string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.budgets == nil {
		l.budgets = map[string]*perSecondBudget{}
	}
	b := l.budgets[event]
	if b == nil {
		b = &perSecondBudget{}
		l.budgets[event] = b
	}
	return b.take(l.now(), logLinesPerSecond)
}

// take lets one more through when the current one-second window holds
// fewer than perSecond, and returns how many were held back since the last
// one let through. The caller holds the lock that guards b.
func (b *perSecondBudget) take(now time.Time, perSecond int) (int, bool) {
	if now.Sub(b.windowStart) >= time.Second || now.Before(b.windowStart) {
		b.windowStart = now
		b.inWindow = 0
	}
	if b.inWindow >= perSecond {
		b.suppressed++
		return 0, false
	}
	b.inWindow++
	suppressed := b.suppressed
	b.suppressed = 0
	return suppressed, true
}

// printWriter writes through fmt.Print (see logger).
type printWriter struct{}

func (printWriter) Write(p []byte) (int, error) { return fmt.Print(string(p)) }

// writeField appends key=value, quoting values that could break the line
// (request data is attacker-controlled: no raw newlines reach the log).
// Values are short (request values are cut to maxShownValue, messages to
// 120 bytes, hints are the guard's own): one compiled check each.
func writeField(b *strings.Builder, key, value string) {
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	if plainLogValue.MatchString(value) {
		b.WriteString(value)
		return
	}
	b.WriteString(strconv.Quote(value))
}

// plainLogValue: printable ASCII without space, quote, equals sign or backslash.
var plainLogValue = regexp.MustCompile(`^[!#-<>-\[\]-~]+$`)

// maxShownValue bounds every request value the guard shows, in an answer
// or a log line: a path, a host, a method, a header value.
const maxShownValue = 128

// shortened cuts a value a client chose before it is shown (written out, not
// through shortenedTo: one call less on a refusal's way under Yaegi).
func shortened(s string) string {
	if len(s) > maxShownValue {
		return s[:maxShownValue] + "…"
	}
	return s
}

// shortenedTo cuts s to max bytes, marking the cut.
func shortenedTo(s string, max int) string {
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
