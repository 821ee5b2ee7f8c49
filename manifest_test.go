package socketioguard

import (
	"context"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestManifestTestDataIsAccepted reads .traefik.yml's testData the way the
// plugin catalog uses it (New must succeed offline) and checks that every
// key names a Config field: Traefik silently ignores unknown keys, so a typo
// there would go unnoticed. The manifest is simple YAML (scalars and lists);
// the e2e module decodes it again with Traefik's own decoder.
func TestManifestTestDataIsAccepted(t *testing.T) {
	raw, err := os.ReadFile(".traefik.yml")
	if err != nil {
		t.Fatal(err)
	}
	data := manifestTestData(t, string(raw))
	if len(data) == 0 {
		t.Fatal(".traefik.yml has no testData")
	}
	cfg := CreateConfig()
	target := reflect.ValueOf(cfg).Elem()
	for key, values := range data {
		field := fieldByKey(target, key)
		if !field.IsValid() {
			t.Errorf("testData key %q is not a Config field", key)
			continue
		}
		if err := setFromStrings(field, values); err != nil {
			t.Errorf("testData %s: %v", key, err)
		}
	}
	if _, err := New(context.Background(), http.NotFoundHandler(), cfg, "manifest"); err != nil {
		t.Errorf("New refuses the manifest's testData: %v", err)
	}
	for _, key := range []string{"displayName", "type", "import", "summary"} {
		if !strings.Contains(string(raw), "\n"+key+":") && !strings.HasPrefix(string(raw), key+":") {
			t.Errorf(".traefik.yml lacks %s", key)
		}
	}
	if !strings.Contains(string(raw), "import: github.com/sysmayal/socketioguard\n") {
		t.Errorf(".traefik.yml import must be the module path")
	}
	// The plugin catalog shows iconPath's image.
	icon := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "iconPath:"); ok {
			icon = strings.TrimSpace(v)
		}
	}
	if png, err := os.ReadFile(icon); icon == "" || err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf(".traefik.yml iconPath %q is not a PNG in the repository: %v", icon, err)
	}
}

// manifestTestData returns testData's keys with their scalar or list values.
func manifestTestData(t *testing.T, manifest string) map[string][]string {
	data := map[string][]string{}
	inTestData, key := false, ""
	for _, line := range strings.Split(manifest, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case line == "testData:":
			inTestData = true
		case !inTestData || trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case !strings.HasPrefix(line, " "):
			inTestData = false
		case strings.HasPrefix(trimmed, "- "):
			data[key] = append(data[key], unquote(strings.TrimPrefix(trimmed, "- ")))
		default:
			k, v, ok := strings.Cut(trimmed, ":")
			if !ok {
				t.Fatalf("cannot read testData line %q", line)
			}
			key = k
			data[key] = nil
			if v = strings.TrimSpace(v); v != "" {
				data[key] = []string{unquote(v)}
			}
		}
	}
	return data
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// fieldByKey matches a key to a field case-insensitively, as Traefik does.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for i := 0; i < v.NumField(); i++ {
		if strings.EqualFold(v.Type().Field(i).Name, key) {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

func setFromStrings(field reflect.Value, values []string) error {
	switch field.Kind() {
	case reflect.Slice:
		field.Set(reflect.ValueOf(values))
		return nil
	case reflect.String:
		field.SetString(strings.Join(values, ""))
		return nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.Join(values, ""))
		field.SetBool(b)
		return err
	case reflect.Int:
		n, err := strconv.Atoi(strings.Join(values, ""))
		field.SetInt(int64(n))
		return err
	}
	return nil
}
