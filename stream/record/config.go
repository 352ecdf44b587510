// Package record writes a tab's recording: the video a peer sends, as the
// encoder made it (no second encode), in a WebM file (VP8) or a Matroska
// file (H.264), with the tab's sound (Opus) when it may have some; and it
// keeps the directory of recordings within an age and a total size.
//
// A Recording satisfies stream.Recorder without importing stream: the
// package does not import the rest of Glovebox.
package record

import (
	"errors"
	"fmt"
	"time"
)

// Config is where recordings go and how long they stay.
type Config struct {
	// Dir is the directory of the recordings (made 0750 if missing; files
	// are 0640). Only files Glovebox named there (glovebox-*.webm,
	// glovebox-*.mkv) are ever removed by retention.
	Dir string `mapstructure:"dir"`
	// MaxAge removes recordings older than this; 0 keeps them whatever
	// their age.
	MaxAge time.Duration `mapstructure:"max_age"`
	// MaxTotalMB bounds the recordings' total size in MiB: past it the
	// oldest finished ones are removed; 0 means no bound.
	MaxTotalMB int `mapstructure:"max_total_mb"`
}

// DefaultConfig returns the defaults documented in config.yaml: 30 days,
// 10 GiB, in /var/lib/glovebox/recordings.
func DefaultConfig() Config {
	return Config{Dir: "/var/lib/glovebox/recordings", MaxAge: 30 * 24 * time.Hour, MaxTotalMB: 10240}
}

// Validate reports every bad value, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: empty: want the directory of the recordings"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max_age: %v: must not be negative (0: no age limit)", c.MaxAge))
	}
	if c.MaxTotalMB < 0 {
		errs = append(errs, fmt.Errorf("max_total_mb: %d: must not be negative (0: no size limit)", c.MaxTotalMB))
	}
	return errors.Join(errs...)
}
