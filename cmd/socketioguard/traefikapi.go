package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// traefikAPIAuthEnv holds "user:password" for Traefik's API when the URL
// does not (keeps the password out of the shell history and ps).
const traefikAPIAuthEnv = "SOCKETIOGUARD_TRAEFIK_API_AUTH"

// maxAPIBody bounds each API answer the doctor reads (rawdata of a large
// installation is a few MB).
const maxAPIBody = 32 << 20

// traefikConfig is Traefik's live configuration as its API serves it.
type traefikConfig struct {
	Version     string
	Routers     map[string]apiRouter
	Middlewares map[string]apiMiddleware
	Services    map[string]apiService
	EntryPoints map[string]apiEntryPoint
}

type apiRouter struct {
	EntryPoints []string `json:"entryPoints"`
	Middlewares []string `json:"middlewares"`
	Service     string   `json:"service"`
	Rule        string   `json:"rule"`
	Status      string   `json:"status"`
	Error       []string `json:"error"`
	Provider    string   `json:"-"`
}

type apiMiddleware struct {
	Plugin map[string]map[string]any `json:"plugin"`
	Retry  *struct {
		Attempts int `json:"attempts"`
	} `json:"retry"`
	Status string   `json:"status"`
	Error  []string `json:"error"`
	UsedBy []string `json:"usedBy"`
}

type apiService struct {
	LoadBalancer *struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Sticky           json.RawMessage `json:"sticky"`
		Strategy         string          `json:"strategy"`
		ServersTransport string          `json:"serversTransport"`
	} `json:"loadBalancer"`
	Weighted *struct {
		Services []struct {
			Name string `json:"name"`
		} `json:"services"`
		Sticky json.RawMessage `json:"sticky"`
	} `json:"weighted"`
	Status string   `json:"status"`
	UsedBy []string `json:"usedBy"`
}

type apiEntryPoint struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Transport struct {
		RespondingTimeouts struct {
			ReadTimeout  string `json:"readTimeout"`
			WriteTimeout string `json:"writeTimeout"`
			IdleTimeout  string `json:"idleTimeout"`
		} `json:"respondingTimeouts"`
	} `json:"transport"`
	ForwardedHeaders struct {
		Insecure   bool     `json:"insecure"`
		TrustedIPs []string `json:"trustedIPs"`
	} `json:"forwardedHeaders"`
}

// traefikAPI reads Traefik's API: credentials from the URL's user:password,
// the environment, or headers; never printed; no redirect to another host.
type traefikAPI struct {
	base    *url.URL // without credentials: what the report shows
	user    *url.Userinfo
	headers http.Header
	client  *http.Client
}

func newTraefikAPI(raw string, headers []string, insecure bool) (*traefikAPI, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--traefik-api: want Traefik's API URL, e.g. https://user:pass@traefik.example.com or http://127.0.0.1:8080")
	}
	api := &traefikAPI{user: u.User, headers: http.Header{}}
	if api.user == nil {
		if auth := os.Getenv(traefikAPIAuthEnv); auth != "" {
			name, pass, ok := strings.Cut(auth, ":")
			if !ok {
				return nil, fmt.Errorf("%s: want user:password", traefikAPIAuthEnv)
			}
			api.user = url.UserPassword(name, pass)
		}
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--traefik-api-header (%d characters, not shown): want \"Name: value\"", len(h))
		}
		api.headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	u.User = nil
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api")
	u.RawQuery, u.Fragment = "", ""
	api.base = u
	api.client = newHTTPClient(insecure, nil)
	host := u.Host
	api.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != host {
			return fmt.Errorf("Traefik's API redirected to another host (%s): not followed, the credentials stay with %s", req.URL.Host, host)
		}
		if len(via) >= 3 {
			return errors.New("more than 3 redirects")
		}
		return nil
	}
	return api, nil
}

func (api *traefikAPI) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base.String()+path, nil)
	if err != nil {
		return err
	}
	for name, values := range api.headers {
		req.Header[name] = values
	}
	if api.user != nil {
		pass, _ := api.user.Password()
		req.SetBasicAuth(api.user.Username(), pass)
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s%s: %s", api.base, path, shortErr(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody+1))
	if err != nil {
		return fmt.Errorf("GET %s%s: %s", api.base, path, shortErr(err))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("GET %s%s: %d: give credentials as user:password@ in the URL, in %s, or --traefik-api-header", api.base, path, resp.StatusCode, traefikAPIAuthEnv)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s%s: %d %q: is this Traefik's API (api.insecure, or the api@internal service on a router)?", api.base, path, resp.StatusCode, trim(string(body), 80))
	case len(body) > maxAPIBody:
		return fmt.Errorf("GET %s%s: answer larger than %d MB", api.base, path, maxAPIBody>>20)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s%s: not Traefik's JSON: %v", api.base, path, err)
	}
	return nil
}

// fetch reads the version, the HTTP configuration (rawdata) and the
// entrypoints.
func (api *traefikAPI) fetch(ctx context.Context) (*traefikConfig, error) {
	var version struct {
		Version string `json:"Version"`
	}
	if err := api.get(ctx, "/api/version", &version); err != nil {
		return nil, err
	}
	var raw struct {
		Routers     map[string]apiRouter     `json:"routers"`
		Middlewares map[string]apiMiddleware `json:"middlewares"`
		Services    map[string]apiService    `json:"services"`
	}
	if err := api.get(ctx, "/api/rawdata", &raw); err != nil {
		return nil, err
	}
	var entryPoints []apiEntryPoint
	if err := api.get(ctx, "/api/entrypoints", &entryPoints); err != nil {
		return nil, err
	}
	c := &traefikConfig{Version: version.Version, Routers: raw.Routers, Middlewares: raw.Middlewares, Services: raw.Services, EntryPoints: map[string]apiEntryPoint{}}
	for name, r := range c.Routers {
		_, r.Provider, _ = strings.Cut(name, "@")
		c.Routers[name] = r
	}
	for _, ep := range entryPoints {
		c.EntryPoints[ep.Name] = ep
	}
	return c, nil
}
