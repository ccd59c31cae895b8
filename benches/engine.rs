//! Per-call cost of the engine's hot paths: `cargo bench --bench engine`.
//!
//! What a node pays per request: a breaker decision plus the recording of its result,
//! a cache lookup in a cache of 100 000 keys (hot key, and keys spread over the whole
//! cache), a CPU sample through the mode controller, and a write going through the
//! queue (enqueue, dispatch, applied).
//!
//! A small harness of its own rather than criterion: the figure wanted is one time
//! per call, and criterion with its dependencies was the largest dev-dependency of a
//! newcomer's first `cargo test` (about 90 s of compiling on a busy 2-core machine,
//! for a benchmark `cargo test` never runs). Each case runs in batches sized to take
//! about 10 ms; the time per call is the best batch of 30 (other work on a shared
//! machine only ever adds time), with the median beside it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use brownout::engine::breaker::{BreakerConfig, CircuitBreaker};
use brownout::engine::cache::{CacheConfig, Lookup, StaleCache};
use brownout::engine::modes::{ModeConfig, ModeController};
use brownout::engine::queue::{QueueConfig, WriteQueue};
use brownout::engine::SECOND;

const KEYS: u64 = 100_000;
const BATCH_TARGET: Duration = Duration::from_millis(10);
const SAMPLES: usize = 30;

/// Times `f` (which does `calls` calls per invocation) and prints nanoseconds per call.
fn bench(name: &str, calls: u64, mut f: impl FnMut()) {
    // Warm up and size a batch to about BATCH_TARGET.
    let mut batch: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        if start.elapsed() >= BATCH_TARGET / 4 || batch >= 1 << 30 {
            let per = start.elapsed().as_secs_f64() / batch as f64;
            batch = ((BATCH_TARGET.as_secs_f64() / per.max(1e-12)) as u64).max(1);
            break;
        }
        batch *= 2;
    }
    let mut ns: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / (batch * calls) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!(
        "{name:<48} {:>8.2} ns per call (best of {SAMPLES}; median {:.2})",
        ns[0],
        ns[SAMPLES / 2]
    );
}

fn breaker() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    let mut now = 0;
    bench("breaker: closed: admit + record success", 1, || {
        now += 1;
        let permit = b.try_acquire(now, &mut rng).unwrap();
        black_box(b.on_success(permit, now, &mut rng));
    });
    let mut open = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    open.force_open(0);
    bench("breaker: open: reject", 1, || {
        black_box(open.try_acquire(black_box(1), &mut rng).is_err());
    });
}

fn cache() {
    let config = CacheConfig {
        capacity: KEYS as usize,
        ..CacheConfig::default()
    };
    let mut cache: StaleCache<u64, u64> = StaleCache::new(config).unwrap();
    for k in 0..KEYS {
        cache.insert(k, k, 0);
    }
    bench("cache (100 000 keys): lookup hit, hot key", 1, || {
        black_box(matches!(
            cache.lookup(black_box(42), SECOND),
            Lookup::Fresh { .. }
        ));
    });
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let keys: Vec<u64> = (0..4096).map(|_| rng.random_range(0..KEYS)).collect();
    let mut i = 0;
    bench("cache (100 000 keys): lookup hit, keys spread", 1, || {
        i = (i + 1) & 4095;
        black_box(matches!(
            cache.lookup(keys[i], SECOND),
            Lookup::Fresh { .. }
        ));
    });
    let mut now = SECOND;
    bench("cache (100 000 keys): insert (refresh a key)", 1, || {
        i = (i + 1) & 4095;
        now += 1;
        cache.insert(keys[i], 7, now);
    });
}

fn modes() {
    let mut m = ModeController::new(ModeConfig::default()).unwrap();
    let mut now = 0;
    let mut cpu = 0.0;
    bench("modes: sample", 1, || {
        now += SECOND;
        cpu = (cpu + 7.3) % 100.0;
        black_box(m.sample(cpu, now).ok());
        m.drain_events().for_each(drop);
    });
}

fn queue() {
    let config = QueueConfig {
        capacity: 1 << 20,
        drain_rate: u32::MAX / 2,
        burst: u32::MAX / 2,
        ..QueueConfig::default()
    };
    // One queue, emptied by every write's round: the steady state of a draining
    // queue, time moving forward.
    let mut q = WriteQueue::<u64>::new(config).unwrap();
    let mut now = 0u64;
    bench(
        "queue: enqueue + dispatch + applied (per write)",
        64,
        || {
            for _ in 0..64 {
                now += 1;
                q.enqueue(now, now);
                let id = q.poll_dispatch(now).map(|d| d.id).unwrap();
                q.on_applied(id, now);
            }
            q.drain_events().for_each(drop);
        },
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    breaker();
    cache();
    modes();
    queue();
}
