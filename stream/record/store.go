package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// filePrefix starts the name of every recording, so that retention
	// touches nothing else in the directory.
	filePrefix = "glovebox-"
	dirMode    = 0o750
	fileMode   = 0o640
)

// Store is the directory of recordings: it names and opens them, and
// removes the old ones.
type Store struct {
	cfg Config
	log *slog.Logger

	// openFile opens a new recording's file: os.OpenFile, but for the
	// tests of a failing disk.
	openFile func(path string, flag int, perm os.FileMode) (*os.File, error)

	mu   sync.Mutex
	open map[string]bool // recordings being written: never removed
}

// NewStore returns the store of cfg.Dir. It touches nothing on disk:
// Prepare does, and each recording opens its own file.
func NewStore(cfg Config, log *slog.Logger) *Store {
	return &Store{cfg: cfg, log: log.With("component", "record"), openFile: os.OpenFile, open: map[string]bool{}}
}

// Prepare makes the directory if need be and applies retention: call it
// at start. An error (an unwritable directory) is the caller's to log:
// the tabs go on, and their recordings fail.
func (s *Store) Prepare() error {
	if err := os.MkdirAll(s.cfg.Dir, dirMode); err != nil {
		return fmt.Errorf("recording directory: %w", err)
	}
	return s.Prune()
}

// pruneEvery is how often Run applies retention besides at each
// recording's end: max_age holds on a Glovebox that records nothing new.
const pruneEvery = time.Hour

// Run applies retention every pruneEvery until ctx is done.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Prune(); err != nil {
				s.log.Error("recording retention", "err", err)
			}
		}
	}
}

// Start begins the recording of tab (an id Glovebox made; it is sanitised
// all the same) with an audio track if audio. Nothing is written until its
// first keyframe.
func (s *Store) Start(tab string, audio bool) *Recording {
	return newRecording(s, tab, audio)
}

// name is a new recording's file name: when it started, the tab, and 64
// random bits so that no one outside can guess it.
func name(tab string, at time.Time, ext string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, tab)
	if len(clean) > 32 {
		clean = clean[:32]
	}
	if clean == "" {
		clean = "tab"
	}
	b := make([]byte, 8)
	rand.Read(b)
	return filePrefix + at.UTC().Format("20060102T150405Z") + "-" + clean + "-" + hex.EncodeToString(b) + ext
}

// create opens a new recording's file (0640, never an existing one) in a
// directory made 0750 if missing, and marks it open.
func (s *Store) create(tab string, at time.Time, ext string) (*os.File, error) {
	if err := os.MkdirAll(s.cfg.Dir, dirMode); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	path := filepath.Join(s.cfg.Dir, name(tab, at, ext))
	// Marked open first: a Prune running meanwhile must not take it.
	s.mu.Lock()
	s.open[path] = true
	s.mu.Unlock()
	f, err := s.openFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		s.mu.Lock()
		delete(s.open, path)
		s.mu.Unlock()
		return nil, fmt.Errorf("create recording: %w", err)
	}
	return f, nil
}

// closed is a recording's file being finished: it may go now, and
// retention runs.
func (s *Store) closed(path string) {
	s.mu.Lock()
	delete(s.open, path)
	s.mu.Unlock()
	if err := s.Prune(); err != nil {
		s.log.Error("recording retention", "err", err)
	}
}

// Prune removes the finished recordings older than max_age, then the
// oldest ones while the total (recordings being written included) is over
// max_total_mb.
func (s *Store) Prune() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read recording directory: %w", err)
	}
	type file struct {
		path string
		size int64
		mod  time.Time
	}
	var files []file
	var total int64
	s.mu.Lock()
	open := make(map[string]bool, len(s.open))
	for p := range s.open {
		open[p] = true
	}
	s.mu.Unlock()
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, filePrefix) ||
			(!strings.HasSuffix(n, extWebM) && !strings.HasSuffix(n, extMKV)) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		p := filepath.Join(s.cfg.Dir, n)
		total += info.Size()
		if !open[p] {
			files = append(files, file{p, info.Size(), info.ModTime()})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	var errs []error
	remove := func(f file, why string) {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return
		}
		total -= f.size
		s.log.Info("recording removed", "file", f.path, "why", why, "bytes", f.size)
	}
	now := time.Now()
	i := 0
	for ; i < len(files) && s.cfg.MaxAge > 0 && now.Sub(files[i].mod) > s.cfg.MaxAge; i++ {
		remove(files[i], "max_age")
	}
	limit := int64(s.cfg.MaxTotalMB) << 20
	for ; i < len(files) && s.cfg.MaxTotalMB > 0 && total > limit; i++ {
		remove(files[i], "max_total_mb")
	}
	return errors.Join(errs...)
}
