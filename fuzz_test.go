package socketioguard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzServeHTTP sends arbitrary path/query/header combinations through the
// guard: it must never panic, and a request outside the Engine.IO paths must
// reach the backend exactly as it arrived, with nothing added to the answer.
func FuzzServeHTTP(f *testing.F) {
	f.Add("GET", "/socket.io/", "EIO=4&transport=polling&t=x", "", "", "", "", false)
	f.Add("GET", "/socket.io", "EIO=4&transport=websocket&sid=abc", "", "", "dGhlIHNhbXBsZSBub25jZQ==", "13", false)
	f.Add("GET", "/socket.io/", "EIO=4&transport=websocket", "websocket", "Upgrade", "k", "13", true)
	f.Add("POST", "/socket.io/", "EIO=3;transport=polling;sid=", "h2c", "keep-alive, upgrade", "", "", false)
	f.Add("OPTIONS", "/socket.io/socket.io.min.js", "%zz=%&EIO", "", "", "", "", false)
	f.Add("GET", "/api/method/ping", "EIO=4&transport=polling", "websocket", "Upgrade", "k", "13", false)
	f.Add("PUT", "/socket.iox", "transport=websocket", "", "close", "", "", true)
	f.Fuzz(func(t *testing.T, method, path, rawQuery, upgrade, connection, wsKey, wsVersion string, http2 bool) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: rawQuery},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Host:       "v2.sysmayal.cloud",
			Header:     http.Header{},
			RemoteAddr: "192.0.2.1:4242",
		}
		req.RequestURI = req.URL.RequestURI()
		if http2 {
			req.Proto = "HTTP/2.0"
			req.ProtoMajor = 2
			req.ProtoMinor = 0
		}
		setIfNotEmpty(req.Header, "Upgrade", upgrade)
		setIfNotEmpty(req.Header, "Connection", connection)
		setIfNotEmpty(req.Header, "Sec-WebSocket-Key", wsKey)
		setIfNotEmpty(req.Header, "Sec-WebSocket-Version", wsVersion)
		before := req.Clone(context.Background())

		var seen *http.Request
		backend := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			seen = r
			rw.WriteHeader(http.StatusNotFound)
		})
		cfg := CreateConfig()
		cfg.SetMissingOrigin = true
		cfg.InspectPath = "/socket.io/.guard"
		guard := newTestGuard(t, cfg, backend, nil)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, req)

		if _, _, isEngineIO := matchEngineIOPath(guard.settings.paths, path); isEngineIO {
			return
		}
		if seen == nil {
			t.Fatalf("non-Engine.IO request %s %q was not forwarded", method, path)
		}
		if seen.URL.String() != before.URL.String() || seen.RequestURI != before.RequestURI ||
			!reflect.DeepEqual(seen.Header, before.Header) || seen.Host != before.Host {
			t.Fatalf("non-Engine.IO request changed: %v %v -> %v %v", before.URL, before.Header, seen.URL, seen.Header)
		}
		for name := range rec.Header() {
			if strings.HasPrefix(name, "X-Socketio-Guard") {
				t.Fatalf("non-Engine.IO answer got %s", name)
			}
		}
		if rec.Code != http.StatusNotFound {
			t.Fatalf("non-Engine.IO answer changed to %d", rec.Code)
		}
	})
}

// FuzzReadEngineIOQuery checks the allocation-free query reader against
// net/url wherever net/url accepts the query.
func FuzzReadEngineIOQuery(f *testing.F) {
	f.Add("EIO=4&transport=polling&t=N8hyd6w")
	f.Add("EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC")
	f.Add("transport=web%73ocket&EIO=4&EIO=3")
	f.Add("EIO=%zz&transport=+polling")
	f.Add("sid=&sid=x")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		var r engineIORequest
		readEngineIOQuery(rawQuery, &r)
		values, err := url.ParseQuery(rawQuery)
		if err != nil || strings.Contains(rawQuery, ";") {
			return
		}
		_, hasEIO := values["EIO"]
		_, hasTransport := values["transport"]
		if r.hasEIO != hasEIO || r.eio != values.Get("EIO") ||
			r.hasTransport != hasTransport || r.transport != values.Get("transport") {
			t.Fatalf("%q: read %+v, net/url reads %v", rawQuery, r, values)
		}
		if r.hasSID != (firstNonEmpty(values["sid"]) != "") {
			t.Fatalf("%q: hasSID %v, net/url reads %v", rawQuery, r.hasSID, values["sid"])
		}
	})
}

func firstNonEmpty(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func setIfNotEmpty(h http.Header, name, value string) {
	if value != "" {
		h.Set(name, value)
	}
}
