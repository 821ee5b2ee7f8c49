// Package interpreted loads the plugin the way Traefik v3.7.13 does
// (pkg/plugins/middlewareyaegi.go; v3.6.12 differs only in how it reads
// New's results): the source in a GOPATH layout, Yaegi
// v0.16.1 with the standard library's symbols only, CreateConfig, then
// mapstructure decoding with weak typing and the "," slice hook, and New
// called through reflection.
package interpreted

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/mitchellh/mapstructure"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// Plugin is a plugin package inside its own interpreter.
type Plugin struct {
	fnNew, fnCreateConfig reflect.Value
}

// Load interprets the package importPath found under
// goPath/src/importPath; the plugin's stdout and stderr go to the writers
// (Traefik passes its logger at DEBUG and ERROR).
func Load(goPath, importPath, basePkg string, stdout, stderr io.Writer) (*Plugin, error) {
	i := interp.New(interp.Options{GoPath: goPath, Env: os.Environ(), Stdout: stdout, Stderr: stderr})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, err
	}
	if _, err := i.Eval(fmt.Sprintf("import %q", importPath)); err != nil {
		return nil, fmt.Errorf("Yaegi cannot import %s: %w", importPath, err)
	}
	if basePkg == "" {
		basePkg = filepath.Base(importPath)
	}
	p := &Plugin{}
	var err error
	if p.fnNew, err = i.Eval(basePkg + ".New"); err != nil {
		return nil, err
	}
	if p.fnCreateConfig, err = i.Eval(basePkg + ".CreateConfig"); err != nil {
		return nil, err
	}
	return p, nil
}

// LoadWorkingTree mounts the working tree's plugin source under dir, as
// Traefik's plugins-local, and loads it.
func LoadWorkingTree(dir string, stdout, stderr io.Writer) (*Plugin, error) {
	tools, err := stack.FindTools()
	if err != nil && tools.Repo == "" {
		return nil, err
	}
	if err := stack.MountPlugin(tools.Repo, dir); err != nil {
		return nil, err
	}
	return Load(filepath.Join(dir, "plugins-local"), stack.PluginModule, "", stdout, stderr)
}

// CreateConfig is Traefik's yaegiMiddlewareBuilder.createConfig.
func (p *Plugin) CreateConfig(config map[string]any) (reflect.Value, error) {
	vConfig := p.fnCreateConfig.Call(nil)[0]
	if len(config) == 0 {
		return vConfig, nil
	}
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           vConfig.Interface(),
	})
	if err != nil {
		return reflect.Value{}, err
	}
	return vConfig, decoder.Decode(config)
}

// New is Traefik's yaegiMiddlewareBuilder.newHandler, as v3.7 has it: New's
// results read with reflect.TypeAssert (v3.6 read them through Interface()).
func (p *Plugin) New(next http.Handler, cfg reflect.Value, name string) (http.Handler, error) {
	results := p.fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), cfg, reflect.ValueOf(name)})
	if len(results) > 1 && results[1].Interface() != nil {
		err, ok := reflect.TypeAssert[error](results[1])
		if !ok {
			return nil, fmt.Errorf("invalid error type: %T", results[1].Interface())
		}
		return nil, err
	}
	handler, ok := reflect.TypeAssert[http.Handler](results[0])
	if !ok {
		return nil, fmt.Errorf("invalid handler type: %T", results[0].Interface())
	}
	return handler, nil
}

// Handler decodes config and builds the handler in one go.
func (p *Plugin) Handler(next http.Handler, config map[string]any, name string) (http.Handler, error) {
	cfg, err := p.CreateConfig(config)
	if err != nil {
		return nil, err
	}
	return p.New(next, cfg, name)
}

// LockedBuffer collects a plugin's output; Yaegi writes to it from whichever
// goroutine serves a request.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
