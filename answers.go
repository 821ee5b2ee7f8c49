package socketioguard

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
)

// ---- The guard's own answers ----
//
// Shared by every stage that refuses or replaces an answer.

// reject counts a problem, logs it (within its budget) and answers with it:
// Engine.IO's error shape plus the guard's detail and hint. hint "" is the
// problem's own. One function, and the answer's constant parts built once
// (answerParts): under Yaegi every call and expression costs each refusal.
func reject(g *Guard, rw http.ResponseWriter, req *http.Request, p *problem, status int, detail, hint string) {
	atomic.AddInt64(&g.byProblem[p.index], 1)
	if p.level <= g.log.level {
		logRejection(g, req, p, hint)
	}
	hintJSON := p.hintJSON
	if hint != "" {
		hintJSON = jsonString(hint)
	}
	detailJSON, _ := json.Marshal(detail) // a string always encodes
	h := rw.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	h[headerError] = p.errorHeader
	rw.WriteHeader(status)
	_, _ = io.WriteString(rw, p.answerPrefix+string(detailJSON)+`,"hint":`+hintJSON+"}}")
}

// logRejection logs a refusal (when its level is written): apart from
// reject, so that a refusal not logged pays nothing for it under Yaegi.
func logRejection(g *Guard, req *http.Request, p *problem, hint string) {
	if hint == "" {
		hint = p.hint
	}
	g.log.event(p.level, p.id, req, hint, "")
}
