package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/netns"
	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/console"
	"github.com/glovebox/glovebox/proxy/egress"
	"github.com/glovebox/glovebox/stream"
	"github.com/glovebox/glovebox/stream/record"
)

// Config is the whole of Glovebox's configuration. config.yaml documents
// every key with its default.
type Config struct {
	Proxy proxy.Config `mapstructure:",squash"`
	// Log is the operational log (not the audit log).
	Log LogConfig `mapstructure:"log"`
	// Audit is where the SOC's JSON events go.
	Audit AuditConfig `mapstructure:"audit"`
	// Isolate picks and configures the runtime that starts browsers.
	Isolate IsolateConfig `mapstructure:"isolate"`
	// Stream is the WebRTC side.
	Stream stream.Config `mapstructure:"stream"`
	// Egress is the proxy every request of the isolated browsers goes through.
	Egress egress.Config `mapstructure:"egress"`
	// Admin is the operators' address: Prometheus metrics, health and
	// the console.
	Admin AdminConfig `mapstructure:"admin"`
	// Recording is where the recordings of tabs whose rule says record go,
	// and how long they stay.
	Recording record.Config `mapstructure:"recording"`
	// Console is what the console does to users' tabs.
	Console ConsoleConfig `mapstructure:"console"`
	// ShutdownGrace is how long a stopping Glovebox lets requests in flight finish.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
}

// LogConfig configures the operational log on standard error.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is json or text.
	Format string `mapstructure:"format"`
}

// AdminConfig configures the admin address.
type AdminConfig struct {
	// Listen is where /metrics (Prometheus text format), /healthz and the
	// console (/console/) are served; empty turns it off. Keep it off the
	// users' network.
	Listen string `mapstructure:"listen"`
	// The console's sign-in and its memory of recent events.
	Console console.Config `mapstructure:",squash"`
}

// ConsoleConfig is what the console's actions show users.
type ConsoleConfig struct {
	// ShadowNotice makes a user's landing page say "An administrator is
	// viewing this session" while one shadows the tab.
	ShadowNotice bool `mapstructure:"shadow_notice"`
}

// AuditConfig says where audit events go.
type AuditConfig struct {
	// Output is stdout, stderr, the path of a file to append to, or none
	// (the events go to Sinks only).
	Output string `mapstructure:"output"`
	// Sinks are more destinations, each with its format and a queue that
	// never blocks the proxy: rotated files, syslog (UDP, TCP, TLS), as
	// JSON or CEF.
	Sinks []audit.SinkConfig `mapstructure:"sinks"`
	// ClipboardContent puts the text of each copy and paste into its
	// clipboard event (cut to audit.MaxClipboardText bytes). Off by
	// default: what people copy is often what a log must not keep.
	ClipboardContent bool `mapstructure:"clipboard_content"`
}

// IsolateConfig picks the runtime.
type IsolateConfig struct {
	// Runtime is "containerd" (one container per tab) or "process"
	// (development only: no container isolation).
	Runtime string `mapstructure:"runtime"`
	// Pool keeps browsers started ahead.
	Pool isolate.PoolConfig `mapstructure:"pool"`
	// Containerd configures the containerd runtime.
	Containerd isolate.ContainerdConfig `mapstructure:"containerd"`
	// Network configures the containers' network.
	Network netns.Config `mapstructure:"network"`
	// Process configures the process runtime.
	Process isolate.ProcessConfig `mapstructure:"process"`
	// Kubernetes configures the Kubernetes runtime.
	Kubernetes isolate.KubernetesConfig `mapstructure:"kubernetes"`
}

func defaultConfig() Config {
	return Config{
		Proxy: proxy.DefaultConfig(),
		Log:   LogConfig{Level: "info", Format: "json"},
		Audit: AuditConfig{Output: "stdout"},
		Isolate: IsolateConfig{
			Runtime:    "containerd",
			Pool:       isolate.DefaultPoolConfig(),
			Containerd: isolate.DefaultContainerdConfig(),
			Network:    netns.DefaultConfig(),
			Process:    isolate.DefaultProcessConfig(),
			Kubernetes: isolate.DefaultKubernetesConfig(),
		},
		Stream:        stream.DefaultConfig(),
		Egress:        egress.DefaultConfig(),
		Admin:         AdminConfig{Listen: "127.0.0.1:9090", Console: console.DefaultConfig()},
		Recording:     record.DefaultConfig(),
		Console:       ConsoleConfig{ShadowNotice: true},
		ShutdownGrace: 10 * time.Second,
	}
}

// egressConfig is egress.* with what the egress proxy takes from the rest:
// its parent (egress.upstream "" inherits upstream.proxy), upstream.direct,
// and auth.header, which it removes from the isolated browsers' requests.
func (c *Config) egressConfig() egress.Config {
	e := c.Egress.WithParent(c.Proxy.Upstream)
	e.AuthHeader = c.Proxy.Auth.Header
	return e
}

// Validate reports every bad value, each naming its full key path
// (isolate.containerd.memory_mb: …) so that loadConfig can point at its
// line. It has no side effects: Check reads the files the configuration
// names.
func (c *Config) Validate() error {
	errs := []error{c.Proxy.Validate()}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		errs = append(errs, fmt.Errorf("log.level: %q: want debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		errs = append(errs, fmt.Errorf("log.format: %q: want json or text", c.Log.Format))
	}
	if c.Audit.Output == "" {
		errs = append(errs, fmt.Errorf("audit.output: empty: want stdout, stderr, a file path or none"))
	}
	for i, sk := range c.Audit.Sinks {
		errs = append(errs, within(fmt.Sprintf("audit.sinks[%d]", i), sk.Validate()))
		if sk.Type == c.Audit.Output {
			errs = append(errs, fmt.Errorf("audit.sinks[%d].type: %s: audit.output is %s already: every event would be written twice (set audit.output: none)", i, sk.Type, sk.Type))
		}
		if sk.Type == "file" && sk.Path == c.Audit.Output {
			errs = append(errs, fmt.Errorf("audit.sinks[%d].path: %s is audit.output already (set audit.output: none)", i, sk.Path))
		}
	}
	switch c.Isolate.Runtime {
	case "containerd":
		errs = append(errs, within("isolate.containerd", c.Isolate.Containerd.Validate()),
			within("isolate.network", c.Isolate.Network.Validate()), c.Egress.Validate())
	case "process":
		errs = append(errs, within("isolate.process", c.Isolate.Process.Validate()))
	case "kubernetes":
		errs = append(errs, within("isolate.kubernetes", c.Isolate.Kubernetes.Validate()), c.Egress.Validate())
	default:
		errs = append(errs, fmt.Errorf("isolate.runtime: %q: want containerd, kubernetes or process", c.Isolate.Runtime))
	}
	errs = append(errs, within("isolate.pool", c.Isolate.Pool.Validate()))
	// As serve hands it to stream, with the containers' network left out.
	sc := streamConfig(*c)
	errs = append(errs, within("stream", sc.Validate()))
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %q: want host:port, or empty for off", c.Admin.Listen))
		}
	}
	errs = append(errs, within("admin", c.Admin.Console.Validate()))
	errs = append(errs, within("recording", c.Recording.Validate()))
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown_grace: must not be negative"))
	}
	return errors.Join(errs...)
}

// Check reads what the configuration names (the htpasswd file, the CA,
// extra CA files and rules' ca_file), as serve does, so that a
// configuration glovebox check accepts does not fail at serve.
func (c *Config) Check() error {
	return c.Proxy.Check()
}

// within puts prefix before the key of each error of err (one error, or
// several joined), as a package's Validate names its keys without the
// section the package is configured under.
func within(prefix string, err error) error {
	if err == nil {
		return nil
	}
	// isolate's configs wrap their joined errors in a word of their own
	// ("isolate containerd config: …"): the keys are inside.
	type joined interface{ Unwrap() []error }
	list := []error{err}
	if j, ok := err.(joined); ok {
		list = j.Unwrap()
	} else if j, ok := errors.Unwrap(err).(joined); ok {
		list = j.Unwrap()
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s.%w", prefix, e)
	}
	return errors.Join(out...)
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("config")

// loadConfig reads the defaults, then the file (if any), then GLOVEBOX_*
// environment variables, then flags, in rising precedence. An unknown key
// or a bad value stops with a message that names the key and, for the file,
// its line.
func loadConfig(path string, flags *pflag.FlagSet) (Config, error) {
	cfg := defaultConfig()
	v := viper.New()
	for key, val := range flatten(reflect.ValueOf(cfg), "") {
		v.SetDefault(key, val)
	}
	v.SetEnvPrefix("GLOVEBOX")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	var root *yaml.Node
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return cfg, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
		}
		if len(doc.Content) > 0 {
			root = doc.Content[0]
			if err := checkKeys(root, reflect.TypeOf(cfg), ""); err != nil {
				return cfg, fmt.Errorf("%w: %s:%v", ErrConfig, path, err)
			}
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
			return cfg, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
		}
	}
	if flags != nil {
		for _, name := range []string{"listen", "log-level"} {
			if f := flags.Lookup(name); f != nil && f.Changed {
				v.Set(strings.ReplaceAll(name, "-", "."), f.Value.String())
			}
		}
	}
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		msg = strings.TrimPrefix(msg, "decoding failed due to the following error(s): ")
		return cfg, fmt.Errorf("%w: %s%s", ErrConfig, where(path, root, msg), msg)
	}
	if err := errors.Join(cfg.Validate(), cfg.Check()); err != nil {
		// One line per error, each with the line of its key.
		lines := strings.Split(err.Error(), "\n")
		for i, l := range lines {
			lines[i] = where(path, root, l) + l
		}
		return cfg, fmt.Errorf("%w: %s", ErrConfig, strings.Join(lines, "\n"+ErrConfig.Error()+": "))
	}
	return cfg, nil
}

// flatten lists every leaf key of a config struct with its value, so viper
// knows each key (and so its GLOVEBOX_ environment variable).
func flatten(v reflect.Value, prefix string) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")
		if tag[0] == "-" {
			continue // set by the wiring, not configurable
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			p := prefix
			if tag[0] != "" {
				p = prefix + tag[0] + "."
			}
			for k, val := range flatten(fv, p) {
				out[k] = val
			}
			continue
		}
		if tag[0] == "" {
			continue
		}
		out[prefix+tag[0]] = fv.Interface()
	}
	return out
}

// checkKeys walks the YAML document beside the config type and reports the
// first key the type does not have, with its line.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Duration(0)):
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("%d: %s: want a mapping of keys", n.Line, orRoot(path))
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("%d: unknown key %q%s", k.Line, join(path, k.Value), suggest(k.Value, fields))
			}
			if err := checkKeys(val, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")
		if tag[0] == "-" {
			continue
		}
		if tag[0] == "" && slices.Contains(tag[1:], "squash") {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if tag[0] != "" {
			out[tag[0]] = f.Type
		}
	}
	return out
}

// suggest names a known key close to a mistyped one.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// where finds the file line of the first key path a validation message
// names ("tabs.max: …", "invalid policy: policy.rules[2] (intranet): …").
func where(path string, root *yaml.Node, msg string) string {
	if root == nil {
		return ""
	}
	best, line := "", 0
	for _, word := range strings.Fields(msg) {
		key := strings.Trim(word, "'\":,")
		if l := lineOf(root, key); l > 0 && len(key) > len(best) {
			best, line = key, l
		}
	}
	if line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d: ", path, line)
}

func lineOf(root *yaml.Node, key string) int {
	if key == "" || strings.ContainsAny(key, " \"/") {
		return 0
	}
	n := root
	for _, part := range strings.Split(key, ".") {
		name, idx, _ := strings.Cut(part, "[")
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					n = n.Content[i+1]
					found = true
					break
				}
			}
		}
		if !found {
			return 0
		}
		if idx != "" {
			var k int
			if _, err := fmt.Sscanf(idx, "%d]", &k); err != nil || n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return 0
			}
			n = n.Content[k]
		}
	}
	return n.Line
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}
