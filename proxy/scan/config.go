package scan

import (
	"fmt"
	"time"
)

// Config is the scanner's configuration (the scan section).
type Config struct {
	// ICAPURL is the ICAP service files are scanned by,
	// icap://host:1344/service; empty means none, and every file a rule
	// says to scan is refused (fail closed).
	ICAPURL string `mapstructure:"icap_url"`
	// Timeout bounds one file's scan; past it the file is refused.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config { return Config{Timeout: DefaultICAPTimeout} }

// Validate reports a bad URL or timeout, naming its key.
func (c Config) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("scan.timeout: must be positive")
	}
	if c.ICAPURL == "" {
		return nil
	}
	if _, err := NewICAP(c.ICAPURL, c.Timeout); err != nil {
		return fmt.Errorf("scan.icap_url: %w", err)
	}
	return nil
}

// New returns the configured scanner, or nil when there is none.
func (c Config) New() (Scanner, error) {
	if c.ICAPURL == "" {
		return nil, nil
	}
	return NewICAP(c.ICAPURL, c.Timeout)
}
