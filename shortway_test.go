package socketioguard

import (
	"regexp"
	"strings"
	"testing"
)

// TestShortWayQueries: which queries the short way recognises (the rest take
// the full way, with the same verdicts: TestGuardScenariosTheFullWay).
func TestShortWayQueries(t *testing.T) {
	polling := shortWayQuery([]string{"4"}, transportPolling)
	websocket := shortWayQuery([]string{"3", "4"}, transportWebsocket)
	cases := []struct {
		name, query                string
		poll, handshake, websocket bool
	}{
		{"socket.io-client's poll", "EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", true, false, false},
		{"sid before t", "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC&t=PaB3x1c", true, false, false},
		{"application parameters first", "token=abc&room=doc%3ARaven&EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", true, false, false},
		{"application parameters around", "a=1&EIO=4&transport=polling&b&sid=x-_9&c=%2a+d", true, false, false},
		{"socket.io-client's handshake", "EIO=4&transport=polling&t=PaB3x1c", false, true, false},
		{"handshake with an application parameter", "token=abc&EIO=4&transport=polling&t=PaB3x1c", false, true, false},
		{"websocket upgrade of a session", "EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", false, false, true},
		{"direct websocket", "EIO=4&transport=websocket", false, false, true},
		{"EIO=3 websocket where 3 is accepted", "EIO=3&transport=websocket", false, false, true},

		// The full way reads these.
		{"transport before EIO (python-engineio's client)", "transport=polling&EIO=4&sid=x", false, false, false},
		{"EIO not accepted", "EIO=3&transport=polling&sid=x", false, false, false},
		{"sid twice", "EIO=4&transport=polling&sid=x&sid=y", false, false, false},
		{"EIO twice", "EIO=4&transport=polling&sid=x&EIO=4", false, false, false},
		{"transport twice", "transport=polling&EIO=4&transport=polling&sid=x", false, false, false},
		{"JSONP", "EIO=4&transport=polling&sid=x&j=0", false, false, false},
		{"bare j", "EIO=4&transport=polling&j", false, false, false},
		{"escaped key that decodes to sid", "EIO=4&transport=polling&sid=x&%73id=y", false, false, false},
		{"escaped key that decodes to j", "EIO=4&transport=polling&%6A=0", false, false, false},
		{"key with +", "EIO=4&transport=polling&sid+=x", false, false, false},
		{"semicolon (Traefik forwards it as &)", "EIO=4&transport=polling&sid=x;j=0", false, false, false},
		{"semicolon in a value", "EIO=4&transport=polling&a=1;sid=y&sid=x", false, false, false},
		{"fragment mark", "EIO=4&transport=polling&sid=x#&j=0", false, false, false},
		{"empty sid", "EIO=4&transport=polling&sid=", false, false, false},
		{"sid outside Engine.IO's alphabet", "EIO=4&transport=polling&sid=a%2Fb", false, false, false},
		{"empty pair", "EIO=4&&transport=polling&sid=x", false, false, false},
		{"malformed escape in an application value (the full way refuses it)", "EIO=4&transport=polling&sid=x&c=%zz", false, false, false},
		{"lone % at the end", "EIO=4&transport=polling&sid=x&c=%", false, false, false},
		{"EIO with a suffix", "EIO=44&transport=polling&sid=x", false, false, false},
		{"transport with a suffix", "EIO=4&transport=pollingx&sid=x", false, false, false},
		{"no EIO", "transport=polling&sid=x", false, false, false},
	}
	for _, c := range cases {
		isPolling, pollingSID := shortWayRecognises(polling, c.query)
		if got := isPolling && pollingSID; got != c.poll {
			t.Errorf("%s: poll %v, want %v (%q)", c.name, got, c.poll, c.query)
		}
		if got := isPolling && !pollingSID; got != c.handshake {
			t.Errorf("%s: polling handshake %v, want %v (%q)", c.name, got, c.handshake, c.query)
		}
		isWebsocket, websocketSID := shortWayRecognises(websocket, c.query)
		if isWebsocket != c.websocket {
			t.Errorf("%s: websocket %v, want %v (%q)", c.name, isWebsocket, c.websocket, c.query)
		}
		if isWebsocket && websocketSID != strings.Contains(c.query, "&sid=") {
			t.Errorf("%s: websocket's sid %v (%q)", c.name, websocketSID, c.query)
		}
		if c.poll || c.handshake || c.websocket {
			checkShortWayReading(t, c.query, pollingSID || websocketSID)
		}
	}
}

// FuzzShortWayQuery: whatever the short way recognises, URLSearchParams (as
// engine.io builds it) reads as one accepted EIO, one transport, one sid of
// its own when there is one, no JSONP.
func FuzzShortWayQuery(f *testing.F) {
	f.Add("EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC")
	f.Add("token=abc&room=doc%3ARaven&EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC")
	f.Add("EIO=4&transport=websocket&sid=x&%73id=y")
	f.Add("s=1&si=2&sidx=3&EIO=4&transport=polling&EI=5&jj=6&sid=x")
	expressions := map[string]*regexp.Regexp{}
	for _, transport := range []string{transportPolling, transportWebsocket} {
		expressions[transport] = shortWayQuery([]string{"4"}, transport)
	}
	f.Fuzz(func(t *testing.T, query string) {
		for transport, expression := range expressions {
			if recognised, withSID := shortWayRecognises(expression, query); recognised {
				values := searchParams(query)
				if len(values["transport"]) != 1 || values["transport"][0] != transport {
					t.Fatalf("%q: recognised for %s, URLSearchParams reads %v", query, transport, values)
				}
				checkShortWayReading(t, query, withSID)
			}
		}
	})
}

// checkShortWayReading: the query reads as one accepted EIO ("3" or "4"),
// one transport, exactly one non-empty sid when withSID (none otherwise),
// no j; and the full way's reader agrees.
func checkShortWayReading(t *testing.T, query string, withSID bool) {
	t.Helper()
	values := searchParams(query)
	if len(values["EIO"]) != 1 || values["EIO"][0] != "4" && values["EIO"][0] != "3" || len(values["transport"]) != 1 || values["j"] != nil {
		t.Fatalf("%q: URLSearchParams reads %v", query, values)
	}
	if withSID && (len(values["sid"]) != 1 || values["sid"][0] == "") || !withSID && values["sid"] != nil {
		t.Fatalf("%q: sid expected %v, URLSearchParams reads %v", query, withSID, values["sid"])
	}
	var full engineIORequest
	readEngineIOQuery(query, &full)
	if full.ambiguousKey != "" || full.hasJSONP || full.eio != values["EIO"][0] || full.transport != values["transport"][0] || full.hasSID != withSID {
		t.Fatalf("%q: the full way reads %+v", query, full)
	}
}

// shortWayRecognises: whether the short way's expression recognises the
// query, and whether it carries a sid (its first group matched). For the
// tests and the benchmarks; the request path reads the match itself.
func shortWayRecognises(expression *regexp.Regexp, query string) (recognised, withSID bool) {
	match := expression.FindStringSubmatchIndex(query)
	return match != nil, match != nil && match[2] >= 0
}
