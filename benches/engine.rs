//! Micro-benchmarks of the delivery path's building blocks (BENCHMARKS.md):
//! signing a request, the durable queue's enqueue and dequeue, and the
//! publish path's store write.
//!
//! `cargo bench --bench engine` (criterion; `-- <filter>` runs a subset).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hookgate::model::delivery::Delivery;
use hookgate::model::event::Event;
use hookgate::model::ids::{EndpointId, TenantId};
use hookgate::signing::{self, HeaderNames};
use hookgate::store::Store;
use serde_json::json;

/// A booking event of about 1 KiB.
fn event(tenant: TenantId) -> Event {
    let notes = "x".repeat(700);
    Event::new(
        tenant,
        None,
        "booking.created",
        json!({"booking": {"id": "bk_42", "status": "confirmed", "total": 1250.5,
            "customer": {"name": "Ada Lovelace", "email": "ada@example.com"}, "notes": notes}}),
    )
}

/// `endpoints` deliveries of `event`, due now.
fn deliveries(event: &Event, endpoints: &[EndpointId]) -> Vec<Delivery> {
    endpoints
        .iter()
        .map(|e| {
            let mut d = Delivery::new(*e, &event.id, &event.event_type, event.created_at);
            d.next_retry = Some(event.created_at);
            d
        })
        .collect()
}

fn signing(c: &mut Criterion) {
    let body = event(TenantId::generate()).body;
    let names = HeaderNames::default();
    let (a, b) = (signing::generate_secret(), signing::generate_secret());
    let mut group = c.benchmark_group("signing");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("headers, 1 KiB, one secret", |bench| {
        bench.iter(|| {
            signing::headers(
                &names,
                "dlv_1",
                "booking.created",
                &[&a],
                1,
                black_box(body.as_bytes()),
            )
        })
    });
    group.bench_function("headers, 1 KiB, two secrets (rotation)", |bench| {
        bench.iter(|| {
            signing::headers(
                &names,
                "dlv_1",
                "booking.created",
                &[&a, &b],
                1,
                black_box(body.as_bytes()),
            )
        })
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 64 << 20).unwrap();
    let tenant = TenantId::generate();
    let endpoints: Vec<EndpointId> = (0..4).map(|_| EndpointId::generate()).collect();
    let mut group = c.benchmark_group("store");
    group.measurement_time(Duration::from_secs(5));

    // The publish path's write: event, 4 log entries and 4 queue entries in
    // one transaction, then the (group-)commit fsync it waits for.
    group.bench_function("publish, 4 deliveries, durable", |bench| {
        bench.iter_batched(
            || {
                let e = event(tenant);
                let d = deliveries(&e, &endpoints);
                (e, d)
            },
            |(e, d)| runtime.block_on(store.publish(e, d, None)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // Dequeue: find the front entry and finish its attempt as a success (log
    // entry updated, entry dropped), as the dispatcher and a worker do.
    group.bench_function("dequeue: due + finish", |bench| {
        bench.iter_custom(|iters| {
            for _ in 0..iters.div_ceil(4) {
                let e = event(tenant);
                let d = deliveries(&e, &endpoints);
                runtime.block_on(store.publish(e, d, None)).unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                let scan = runtime.block_on(store.due(None, u64::MAX, 1)).unwrap();
                let (key, entry) = scan.entries.into_iter().next().expect("queued");
                runtime
                    .block_on(store.finish_attempt(&key, &entry, |_| None))
                    .unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, signing, store);
criterion_main!(benches);
