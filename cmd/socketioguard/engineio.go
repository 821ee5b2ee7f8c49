package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// target is what the doctor talks to: the Socket.IO endpoint and the
// headers a browser page of that site would send.
type target struct {
	base      *url.URL // scheme://host[:port]
	path      string   // Engine.IO path, with trailing slash
	namespace string   // "/" or "/<site>"
	eio       string
	origin    string
	cookie    string
	// authorization is sent as the Authorization header (a token client).
	authorization string
	// connectTo sends connections for host:port to another address (--connect-to).
	connectTo map[string]string
	client    *http.Client // keeps cookies across the steps, as a browser does (sticky sessions)
	insecure  bool
}

// freshClient is a client with its own cookie jar: a new browser.
func (t *target) freshClient() *target {
	c := *t
	c.client = newHTTPClient(t.insecure, t.connectTo)
	return &c
}

// endpoint is the Engine.IO URL with the given query.
func (t *target) endpoint(query url.Values) string {
	u := *t.base
	u.Path = t.path
	u.RawQuery = query.Encode()
	return u.String()
}

func (t *target) query(transport, sid string) url.Values {
	q := url.Values{"EIO": {t.eio}, "transport": {transport}, "t": {fmt.Sprintf("doctor%d", time.Now().UnixNano()%1e9)}}
	if sid != "" {
		q.Set("sid", sid)
	}
	return q
}

func (t *target) header() http.Header {
	h := http.Header{}
	if t.origin != "" {
		h.Set("Origin", t.origin)
	}
	if t.cookie != "" {
		h.Set("Cookie", t.cookie)
	}
	if t.authorization != "" {
		h.Set("Authorization", t.authorization)
	}
	h.Set("User-Agent", "socketioguard-doctor")
	return h
}

// answer is an HTTP answer with the evidence the doctor prints.
type answer struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
	Body        string `json:"firstBytes,omitempty"`
	GuardError  string `json:"guardError,omitempty"`
	Diagnosis   string `json:"guardDiagnosis,omitempty"`
	Repaired    string `json:"guardRepaired,omitempty"`
	Elapsed     string `json:"elapsed,omitempty"`
	// What names a hop that answered instead of the Socket.IO server: a
	// redirect's target, an authentication challenge, a WAF's mark.
	Location        string `json:"location,omitempty"` // shownLocation: no userinfo, query or escapes
	loginRedirect   bool   // the Location's query carries a return address
	WWWAuthenticate string `json:"wwwAuthenticate,omitempty"`
	Mitigated       string `json:"cfMitigated,omitempty"`
	requestScheme   string // http or https: how the request went out
}

// hopHeaders copies what names a hop from an answer's headers.
func (a *answer) hopHeaders(resp *http.Response) {
	h := resp.Header
	location := h.Get("Location")
	// Where a redirect points is shown without what it may carry (userinfo,
	// a login page's state, a return address with a session id); whether it
	// is a login page's is read from the whole Location first.
	a.loginRedirect = location != "" && loginRedirect(location)
	a.Location = shownLocation(location)
	a.WWWAuthenticate, a.Mitigated = trim(h.Get("WWW-Authenticate"), 200), h.Get("Cf-Mitigated")
	if resp.Request != nil {
		a.requestScheme = map[string]string{"ws": "http", "wss": "https"}[resp.Request.URL.Scheme]
		if a.requestScheme == "" {
			a.requestScheme = resp.Request.URL.Scheme
		}
	}
}

func readAnswer(resp *http.Response, started time.Time) answer {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	a := answer{
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		Body:        string(body),
		GuardError:  resp.Header.Get("X-Socketio-Guard-Error"),
		Diagnosis:   resp.Header.Get("X-Socketio-Guard-Diagnosis"),
		Repaired:    resp.Header.Get("X-Socketio-Guard-Repaired"),
		Elapsed:     time.Since(started).Round(time.Millisecond).String(),
	}
	a.hopHeaders(resp)
	return a
}

// send makes a request with the run's headers (a POST's body as Engine.IO
// polling sends it); the caller closes the answer's body.
func (t *target) send(ctx context.Context, method, url, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = t.header()
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	return t.client.Do(req)
}

func (t *target) do(ctx context.Context, method, url, body string) (answer, error) {
	started := time.Now()
	resp, err := t.send(ctx, method, url, body)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	return readAnswer(resp, started), nil
}

// openPacket is Engine.IO's handshake answer.
type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

// parseOpen reads "0{…}" (EIO=4) or "96:0{…}" (EIO=3, length-prefixed).
func parseOpen(body string) (openPacket, bool) {
	if i := strings.Index(body, ":0{"); i > 0 && i < 8 {
		body = body[i+1:]
	}
	if !strings.HasPrefix(body, "0{") {
		return openPacket{}, false
	}
	end := strings.LastIndex(body, "}")
	var open openPacket
	if err := json.Unmarshal([]byte(body[1:end+1]), &open); err != nil || open.SID == "" {
		return openPacket{}, false
	}
	return open, true
}

// engineIOError reads {"code":N,"message":"…"}.
func engineIOError(body string) (int, string, bool) {
	var e struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(strings.TrimSpace(body)), &e) != nil || e.Code == nil {
		return 0, "", false
	}
	return *e.Code, e.Message, true
}

// connectPacket is the Socket.IO CONNECT to the namespace.
func (t *target) connectPacket() string {
	if t.namespace == "/" {
		return "40"
	}
	return "40" + t.namespace + ","
}

// namespaceAnswer finds the CONNECT (40) or CONNECT_ERROR (44) for the
// namespace among Engine.IO packets (polling payloads are joined by 0x1e).
func (t *target) namespaceAnswer(payload string) (connected bool, message string, found bool) {
	prefix := "4"
	for _, packet := range strings.Split(payload, "\x1e") {
		if !strings.HasPrefix(packet, prefix) || len(packet) < 2 {
			continue
		}
		sio := packet[1:] // Socket.IO packet
		rest := sio[1:]
		if t.namespace != "/" {
			if !strings.HasPrefix(rest, t.namespace+",") {
				continue
			}
			rest = strings.TrimPrefix(rest, t.namespace+",")
		}
		switch sio[0] {
		case '0':
			return true, "", true
		case '4':
			var e struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal([]byte(rest), &e)
			if e.Message == "" {
				e.Message = rest
			}
			return false, e.Message, true
		}
	}
	return false, "", false
}

// dialWebsocket opens a websocket to the Engine.IO endpoint.
func (t *target) dialWebsocket(ctx context.Context, sid string) (*websocket.Conn, answer, error) {
	u := *t.base
	u.Scheme = map[string]string{"https": "wss", "http": "ws"}[t.base.Scheme]
	u.Path = t.path
	u.RawQuery = t.query("websocket", sid).Encode()
	started := time.Now()
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: t.header(), HTTPClient: t.client})
	var a answer
	if resp != nil {
		a = answer{
			Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
			GuardError: resp.Header.Get("X-Socketio-Guard-Error"), Diagnosis: resp.Header.Get("X-Socketio-Guard-Diagnosis"),
			Repaired: resp.Header.Get("X-Socketio-Guard-Repaired"), Elapsed: time.Since(started).Round(time.Millisecond).String(),
		}
		a.hopHeaders(resp)
		if conn == nil && resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			a.Body = string(b)
		}
	}
	if conn != nil {
		conn.SetReadLimit(1 << 20)
	}
	return conn, a, err
}

// readText reads text frames, answering the server's pings, until one
// satisfies want or the context ends.
func readText(ctx context.Context, conn *websocket.Conn, want func(string) bool) (string, error) {
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return "", err
		}
		text := string(msg)
		if text == "2" {
			_ = conn.Write(ctx, websocket.MessageText, []byte("3"))
			continue
		}
		if want(text) {
			return text, nil
		}
	}
}

func newHTTPClient(insecure bool, connectTo map[string]string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // only with --insecure
	tr.ForceAttemptHTTP2 = false                                   // websockets and Engine.IO polling as browsers open them: HTTP/1.1
	if len(connectTo) > 0 {
		// --connect-to: the URL's host stays the Host header and the TLS
		// name; only the TCP connection goes elsewhere (as curl's).
		dialer := &net.Dialer{Timeout: 30 * time.Second}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := connectTo[addr]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		}
	}
	// No client timeout: every request has its context (a timeout would also
	// cut websockets after their 101). Cookies are kept, like a browser's.
	// Redirects are not followed: a browser follows a redirected poll but
	// never a redirected websocket handshake, so the doctor names the
	// redirect instead of hiding it.
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// parseConnectTo reads curl's --connect-to HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT.
func parseConnectTo(values []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range values {
		parts := strings.Split(v, ":")
		if len(parts) != 4 || parts[0] == "" || parts[2] == "" {
			return nil, fmt.Errorf("--connect-to %q: want HOST:PORT:ADDRESS:PORT, e.g. erp.example.com:443:127.0.0.1:8443", v)
		}
		for _, port := range []string{parts[1], parts[3]} {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("--connect-to %q: port %q is not 1–65535", v, port)
			}
		}
		m[net.JoinHostPort(parts[0], parts[1])] = net.JoinHostPort(parts[2], parts[3])
	}
	return m, nil
}

// callbackOverHTTP asks get_user_info over http:// with the session, as
// Frappe's realtime server does when the Origin it received says http: the
// answer as it comes (redirects not followed).
func (t *target) callbackOverHTTP(ctx context.Context) (answer, error) {
	u := *t.base
	u.Scheme, u.Host = "http", t.base.Hostname()
	u.Path = "/api/method/frappe.realtime.get_user_info"
	return t.do(ctx, http.MethodGet, u.String(), "")
}

// frappeSessionUser asks Frappe who the --cookie session belongs to, the way
// its realtime server does (/api/method/frappe.realtime.get_user_info): ""
// when there is no cookie or the answer is not Frappe's.
func (t *target) frappeSessionUser(ctx context.Context) string {
	if t.cookie == "" {
		return ""
	}
	u := *t.base
	u.Path = "/api/method/frappe.realtime.get_user_info"
	a, err := t.do(ctx, http.MethodGet, u.String(), "")
	if err != nil || a.Status != http.StatusOK {
		return ""
	}
	var info struct {
		Message struct {
			User string `json:"user"`
		} `json:"message"`
	}
	if json.Unmarshal([]byte(a.Body), &info) != nil {
		return ""
	}
	return info.Message.User
}
