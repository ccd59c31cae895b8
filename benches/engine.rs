//! Per-call cost of the engine's hot paths: `cargo bench --bench engine`.
//!
//! What a node pays per request: a breaker decision plus the recording of its result,
//! a cache lookup in a cache of 100 000 keys (hot key, and keys spread over the whole
//! cache), a CPU sample through the mode controller, and a write going through the
//! queue (enqueue, dispatch, applied).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use brownout::engine::breaker::{BreakerConfig, CircuitBreaker};
use brownout::engine::cache::{CacheConfig, StaleCache};
use brownout::engine::modes::{ModeConfig, ModeController};
use brownout::engine::queue::{QueueConfig, WriteQueue};
use brownout::engine::SECOND;

const KEYS: u64 = 100_000;

fn breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    group.throughput(Throughput::Elements(1));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    let mut now = 0;
    group.bench_function("closed: admit + record success", |bench| {
        bench.iter(|| {
            now += 1;
            let permit = b.try_acquire(now, &mut rng).unwrap();
            black_box(b.on_success(permit, now, &mut rng));
        })
    });
    let mut open = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    open.force_open(0);
    group.bench_function("open: reject", |bench| {
        bench.iter(|| black_box(open.try_acquire(black_box(1), &mut rng).is_err()))
    });
    group.finish();
}

fn cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache (100 000 keys)");
    group.throughput(Throughput::Elements(1));
    let config = CacheConfig {
        capacity: KEYS as usize,
        ..CacheConfig::default()
    };
    let mut cache: StaleCache<u64, u64> = StaleCache::new(config).unwrap();
    for k in 0..KEYS {
        cache.insert(k, k, 0);
    }
    group.bench_function("lookup hit, hot key", |bench| {
        bench.iter(|| {
            black_box(matches!(
                cache.lookup(black_box(42), SECOND),
                brownout::engine::cache::Lookup::Fresh { .. }
            ))
        })
    });
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let keys: Vec<u64> = (0..4096).map(|_| rng.random_range(0..KEYS)).collect();
    let mut i = 0;
    group.bench_function("lookup hit, keys spread over the cache", |bench| {
        bench.iter(|| {
            i = (i + 1) & 4095;
            black_box(matches!(
                cache.lookup(keys[i], SECOND),
                brownout::engine::cache::Lookup::Fresh { .. }
            ))
        })
    });
    let mut now = SECOND;
    group.bench_function("insert (refresh an existing key)", |bench| {
        bench.iter(|| {
            i = (i + 1) & 4095;
            now += 1;
            cache.insert(keys[i], 7, now);
        })
    });
    group.finish();
}

fn modes(c: &mut Criterion) {
    let mut group = c.benchmark_group("modes");
    group.throughput(Throughput::Elements(1));
    let mut m = ModeController::new(ModeConfig::default()).unwrap();
    let mut now = 0;
    let mut cpu = 0.0;
    group.bench_function("sample", |bench| {
        bench.iter(|| {
            now += SECOND;
            cpu = (cpu + 7.3) % 100.0;
            black_box(m.sample(cpu, now).ok());
            m.drain_events().for_each(drop);
        })
    });
    group.finish();
}

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    // 64 writes per iteration: divide the time by 64 (criterion's thrpt does).
    group.throughput(Throughput::Elements(64));
    let config = QueueConfig {
        capacity: 1 << 20,
        drain_rate: u32::MAX / 2,
        burst: u32::MAX / 2,
        ..QueueConfig::default()
    };
    group.bench_function("64 x (enqueue + dispatch + applied)", |bench| {
        bench.iter_batched_ref(
            || WriteQueue::<u64>::new(config.clone()).unwrap(),
            |q| {
                for n in 0..64u64 {
                    q.enqueue(n, n);
                    let id = q.poll_dispatch(n).map(|d| d.id).unwrap();
                    q.on_applied(id, n);
                }
                q.drain_events().for_each(drop);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, breaker, cache, modes, queue);
criterion_main!(benches);
