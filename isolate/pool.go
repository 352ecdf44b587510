package isolate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Starter starts one browser. The runtimes satisfy it.
type Starter interface {
	Name() string
	Start(ctx context.Context, spec Spec) (*Browser, error)
}

// PoolConfig configures the warm pool.
type PoolConfig struct {
	// Size is how many browsers are kept started ahead, on about:blank, for
	// tabs to claim; 0 turns the pool off (every tab starts a cold browser).
	Size int `mapstructure:"size"`
	// Scale is the device scale factor warm browsers are started with
	// (set by the wiring to tabs.max_scale): frames are captured at the
	// lower of it and the client's devicePixelRatio.
	Scale float64 `mapstructure:"-"`
	// RetryDelay is how long the pool waits after a failed start before it
	// tries again.
	RetryDelay time.Duration `mapstructure:"retry_delay"`
}

// DefaultPoolConfig returns the pool's defaults.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Size: 2, RetryDelay: 5 * time.Second}
}

// Validate reports the first bad value, naming its key.
func (c PoolConfig) Validate() error {
	if c.Size < 0 || c.Size > 100 {
		return fmt.Errorf("size: %d: want 0–100", c.Size)
	}
	if c.RetryDelay <= 0 {
		return fmt.Errorf("retry_delay: must be positive")
	}
	return nil
}

// PoolStats are the pool's counters.
type PoolStats struct {
	Ready    int // warm browsers waiting now
	Starting int // warm browsers being started now
	Claims   int // tabs that got a warm browser
	Misses   int // tabs that had to start a cold one
	Failures int // warm starts that failed
	Discards int // warm browsers that died while waiting
	// Conflicts are claims another replica won (the shared pool).
	Conflicts int
}

// Pool keeps Size browsers started ahead. A tab claims one; the pool starts
// another in the background. A claimed browser is the tab's alone and is
// never returned: when the tab ends, it is destroyed.
type Pool struct {
	st  Starter
	cfg PoolConfig
	log *slog.Logger

	ctx    context.Context // cancelled by Close: stops warm starts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ready    []*Browser
	starting int
	stats    PoolStats
	closed   bool
	// failStreak counts the warm starts that failed since the last one
	// that succeeded; lastErr is the last one's error.
	failStreak int
	lastErr    error
}

// poolFailingAfter is how many warm starts in a row must fail for the pool
// to report itself failing: one failure is a browser's bad luck, several are
// a runtime that cannot start browsers.
const poolFailingAfter = 3

// NewPool starts filling a pool of warm browsers from st.
func NewPool(st Starter, cfg PoolConfig, log *slog.Logger) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{st: st, cfg: cfg, log: log.With("component", "pool", "runtime", st.Name()), ctx: ctx, cancel: cancel}
	p.fill()
	return p
}

// Name is the runtime's name.
func (p *Pool) Name() string { return p.st.Name() }

// Holds says whether ip is the address of a warm browser the pool holds
// (no tab has it yet).
func (p *Pool) Holds(ip string) bool {
	a := net.ParseIP(ip)
	if a == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.ready {
		if b.Addr != nil && b.Addr.Equal(a) {
			return true
		}
	}
	return false
}

// Start returns a warm browser if one is ready, or starts a cold one. The
// spec's size is only the first window size: the tab sets its viewport.
func (p *Pool) Start(ctx context.Context, spec Spec) (*Browser, error) {
	t0 := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.ready) > 0 {
		b := p.ready[0]
		p.ready = p.ready[1:]
		select {
		case <-b.Done():
			// Died while waiting (out of memory, killed): never hand it out.
			p.stats.Discards++
			p.mu.Unlock()
			b.Close()
			p.mu.Lock()
			continue
		default:
		}
		p.stats.Claims++
		p.mu.Unlock()
		b.Warm = true
		p.log.Info("warm browser claimed", "tab", spec.TabID, "browser", b.ID, "wait", time.Since(t0))
		p.fill()
		return b, nil
	}
	p.stats.Misses++
	p.mu.Unlock()
	p.log.Info("no warm browser ready: starting a cold one", "tab", spec.TabID)
	p.fill()
	return p.st.Start(ctx, spec)
}

// fill starts warm browsers until ready + starting reaches Size.
func (p *Pool) fill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && len(p.ready)+p.starting < p.cfg.Size {
		p.starting++
		p.wg.Add(1)
		go p.startOne()
	}
}

func (p *Pool) startOne() {
	defer p.wg.Done()
	b, err := p.st.Start(p.ctx, Spec{TabID: "pool", Scale: p.cfg.Scale})
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.stats.Failures++
		closed := p.closed
		// A full subnet is the runtime at capacity, not failing: the
		// open tabs hold every place, and health says nothing of it.
		if !closed && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrCapacity) {
			p.failStreak++
			p.lastErr = err
		}
		p.mu.Unlock()
		if closed || errors.Is(err, context.Canceled) {
			return
		}
		p.log.Warn("warm browser failed to start", "err", err, "retry_in", p.cfg.RetryDelay)
		select {
		case <-time.After(p.cfg.RetryDelay):
			p.fill()
		case <-p.ctx.Done():
		}
		return
	}
	p.failStreak, p.lastErr = 0, nil
	if p.closed {
		p.mu.Unlock()
		b.Close()
		return
	}
	p.ready = append(p.ready, b)
	n := len(p.ready)
	p.mu.Unlock()
	p.log.Debug("warm browser ready", "browser", b.ID, "ready", n)
	// A warm browser that dies while waiting is replaced at once.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-b.Done():
			p.mu.Lock()
			for i, r := range p.ready {
				if r == b {
					p.ready = append(p.ready[:i], p.ready[i+1:]...)
					p.stats.Discards++
					p.mu.Unlock()
					b.Close()
					p.log.Warn("warm browser died while waiting; replacing it", "browser", b.ID)
					p.fill()
					return
				}
			}
			p.mu.Unlock()
		case <-p.ctx.Done():
		}
	}()
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Ready = len(p.ready)
	s.Starting = p.starting
	return s
}

// Health reports whether the pool can start browsers: an error, naming the
// last failure, once poolFailingAfter warm starts in a row have failed; nil
// again after one succeeds. An empty pool whose starts succeed is busy, not
// failing.
func (p *Pool) Health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failStreak < poolFailingAfter {
		return nil
	}
	return fmt.Errorf("pool: the last %d warm starts failed (%d ready): %w", p.failStreak, len(p.ready), p.lastErr)
}

// Close stops filling and destroys every unclaimed browser. Claimed ones
// belong to their tabs.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	ready := p.ready
	p.ready = nil
	p.mu.Unlock()
	p.cancel()
	var errs []error
	for _, b := range ready {
		errs = append(errs, b.Close())
	}
	p.wg.Wait()
	return errors.Join(errs...)
}
