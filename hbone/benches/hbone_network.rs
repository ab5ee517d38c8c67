//! B1–B3 and B9 (performance spec §6): HBONE over loopback against a plain two-hop TCP copy
//! relay measured in the same run, peers interleaved, medians of repetitions.
//!
//! Topology (all in this process, so CPU figures cover client, proxies and sink alike):
//! - relay: client → relay A → relay B → sink, each relay a tokio copy (`hbone::bridge::bridge`,
//!   buffers growing from 1 KiB to 256 KiB with traffic).
//! - HBONE: client → A (plain TCP in, HBONE client out) → B (HBONE server) → sink.
//!
//! Crypto provider: aws-lc-rs (ztunnel's default, as the performance spec asks of peers).
//!
//! Run: `cargo bench -p hbone --bench hbone_network` (`BENCH_QUICK=1` for a short run);
//! rows are appended to `$BENCH_RESULTS` when set (see `scripts/bench`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hbone::bridge::{bridge, bridge_tunnel};
use hbone::client::{HboneConnector, HboneTarget};
use hbone::dev_ca::DevCa;
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer};
use hbone::tls::HboneTls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

struct Scale {
    bulk_bytes: usize,
    repetitions: usize,
    round_trips: usize,
    connects: usize,
    idle: usize,
}

fn scale() -> Scale {
    if std::env::var_os("BENCH_QUICK").is_some() {
        Scale {
            bulk_bytes: 256 << 20,
            repetitions: 3,
            round_trips: 2_000,
            connects: 300,
            idle: 300,
        }
    } else {
        Scale {
            bulk_bytes: 1 << 30,
            repetitions: 5,
            round_trips: 20_000,
            connects: 2_000,
            idle: 1_000,
        }
    }
}

/// A path from a local TCP entry point to a destination.
#[derive(Clone, Copy)]
struct Path {
    name: &'static str,
    entry: SocketAddr,
}

async fn accept_loop<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream));
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// A TCP relay to `upstream`, copying with the same adaptive [`bridge`] the HBONE server uses
/// for other streams, so the difference between the two paths is HBONE's own cost.
async fn relay(upstream: SocketAddr) -> SocketAddr {
    let (listener, address) = listen().await;
    tokio::spawn(accept_loop(listener, move |mut inbound| async move {
        let Ok(mut outbound) = TcpStream::connect(upstream).await else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        let _ = bridge(&mut inbound, &mut outbound).await;
    }));
    address
}

/// Echo (for round trips and connects) or discard-and-count (for bulk) destination.
async fn destination(echo: bool) -> SocketAddr {
    let (listener, address) = listen().await;
    tokio::spawn(accept_loop(listener, move |mut stream| async move {
        let mut buffer = vec![0u8; if echo { 4 * 1024 } else { 256 * 1024 }];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if echo && stream.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        // Report the byte count, then close.
        let _ = stream.write_all(&total.to_be_bytes()).await;
    }));
    address
}

struct Hbone {
    tls: HboneTls,
    ca: DevCa,
}

impl Hbone {
    fn new() -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Hbone {
            tls: HboneTls::new(provider),
            ca: DevCa::new("cluster.local").unwrap(),
        }
    }

    async fn server(&self, upstream: SocketAddr) -> SocketAddr {
        let certificate = self.ca.issue(&SERVER.parse().unwrap()).unwrap().workload;
        let config = Arc::new(self.tls.server_config(&certificate).unwrap());
        let service = tower::service_fn(move |_: ConnectRequest| async move {
            Ok::<_, std::convert::Infallible>(ConnectDecision::forward(upstream))
        });
        let (listener, address) = listen().await;
        tokio::spawn(HboneServer::new(config, service).serve(listener, std::future::pending()));
        address
    }

    fn target(&self, next_hop: SocketAddr) -> HboneTarget {
        let certificate = Arc::new(self.ca.issue(&CLIENT.parse().unwrap()).unwrap().workload);
        HboneTarget::new(
            next_hop,
            "10.0.0.1:80".parse().unwrap(),
            vec![SERVER.parse().unwrap()],
            certificate,
        )
        .unwrap()
    }

    /// The client side: plain TCP in, one HBONE tunnel out per connection. With `pooled`
    /// false every connection dials its own mTLS connection (pooling defeated).
    async fn entry(&self, next_hop: SocketAddr, pooled: bool) -> SocketAddr {
        let (listener, address) = listen().await;
        let connector = HboneConnector::new(self.tls.clone());
        let tls = self.tls.clone();
        let target = self.target(next_hop);
        tokio::spawn(accept_loop(listener, move |mut inbound| {
            let connector = if pooled {
                connector.clone()
            } else {
                HboneConnector::new(tls.clone())
            };
            let target = target.clone();
            async move {
                let Ok(mut tunnel) = connector.open(&target).await else {
                    return;
                };
                let _ = bridge_tunnel(&mut tunnel, &mut inbound).await;
            }
        }));
        address
    }
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Heap bytes currently allocated by this process (all threads).
fn heap_bytes() -> f64 {
    let stats = ALLOCATOR.stats();
    stats.bytes_allocated as f64 + stats.bytes_reallocated as f64 - stats.bytes_deallocated as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Sends `bytes` through `path` to a discarding sink; returns (Gbit/s, CPU-s/GB).
async fn bulk_once(path: Path, bytes: usize) -> (f64, f64) {
    let chunk = vec![0x5au8; 256 * 1024];
    let mut stream = TcpStream::connect(path.entry).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        stream.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    stream.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        u64::from_be_bytes(count) as usize,
        sent,
        "{} lost bytes",
        path.name
    );
    let gigabytes = sent as f64 / 1e9;
    (gigabytes * 8.0 / elapsed, (cpu_seconds() - cpu) / gigabytes)
}

/// Ping-pong of `size` bytes `count` times on one connection per path, alternating the paths
/// every 100 round trips so both see the same scheduling conditions (idle vCPUs wake slowly);
/// returns each path's sorted RTTs in µs.
async fn round_trips(paths: [Path; 2], size: usize, count: usize) -> [Vec<f64>; 2] {
    let mut streams = Vec::new();
    for path in paths {
        let stream = TcpStream::connect(path.entry).await.unwrap();
        stream.set_nodelay(true).unwrap();
        streams.push(stream);
    }
    let message = vec![7u8; size];
    let mut reply = vec![0u8; size];
    let mut samples = [Vec::with_capacity(count), Vec::with_capacity(count)];
    let warmup = count / 20;
    for block in 0..(count + warmup).div_ceil(100) {
        for (index, stream) in streams.iter_mut().enumerate() {
            for i in 0..100 {
                let started = Instant::now();
                stream.write_all(&message).await.unwrap();
                stream.read_exact(&mut reply).await.unwrap();
                if block * 100 + i >= warmup {
                    samples[index].push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
    }
    for path_samples in &mut samples {
        path_samples.sort_by(|a, b| a.total_cmp(b));
    }
    samples
}

/// New connection through `path`, 1-byte echo, close; `count` times; returns operations/s.
async fn connects(path: Path, count: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..count {
        let mut stream = TcpStream::connect(path.entry).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut reply = [0u8; 1];
        stream.read_exact(&mut reply).await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Opens `count` connections through `path`, each with one echoed byte, keeps them idle, and
/// returns the heap bytes added per connection (client, proxies and echo server together).
async fn idle_memory(path: Path, count: usize) -> f64 {
    let mut held = Vec::with_capacity(count);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = heap_bytes();
    for _ in 0..count {
        let mut stream = TcpStream::connect(path.entry).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut reply = [0u8; 1];
        stream.read_exact(&mut reply).await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_connection = (heap_bytes() - before) / count as f64;
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    per_connection
}

struct Row {
    bench: &'static str,
    metric: &'static str,
    ours: f64,
    baseline: f64,
    unit: &'static str,
    goal: &'static str,
}

fn report(rows: &[Row]) {
    println!("| benchmark | metric | HBONE | 2-hop TCP relay | ratio | goal |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.3} {} | {:.3} {} | {:.2}× | {} |",
            row.bench,
            row.metric,
            row.ours,
            row.unit,
            row.baseline,
            row.unit,
            row.ours / row.baseline,
            row.goal
        );
    }
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        for row in rows {
            let json = serde_json::json!({
                "crate": "hbone", "bench": row.bench, "metric": row.metric, "ours": row.ours,
                "baseline": row.baseline, "baseline_name": "2-hop TCP relay", "unit": row.unit,
                "goal": row.goal,
            });
            writeln!(file, "{json}").unwrap();
        }
    }
}

fn main() {
    // `cargo bench` passes harness flags such as `--bench`; this harness takes none.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let scale = scale();
    let hbone = Hbone::new();
    let sink = destination(false).await;
    let echo = destination(true).await;
    let relay_sink = Path {
        name: "relay",
        entry: relay(relay(sink).await).await,
    };
    let hbone_sink = Path {
        name: "hbone",
        entry: hbone.entry(hbone.server(sink).await, true).await,
    };
    let relay_echo = Path {
        name: "relay",
        entry: relay(relay(echo).await).await,
    };
    let hbone_echo = Path {
        name: "hbone",
        entry: hbone.entry(hbone.server(echo).await, true).await,
    };
    let hbone_unpooled = Path {
        name: "hbone",
        entry: hbone.entry(hbone.server(echo).await, false).await,
    };
    let mut rows = Vec::new();

    // B1: bulk, interleaved.
    let (mut relay_rate, mut relay_cpu, mut hbone_rate, mut hbone_cpu) =
        (vec![], vec![], vec![], vec![]);
    bulk_once(relay_sink, scale.bulk_bytes / 4).await;
    bulk_once(hbone_sink, scale.bulk_bytes / 4).await;
    for _ in 0..scale.repetitions {
        let (rate, cpu) = bulk_once(relay_sink, scale.bulk_bytes).await;
        relay_rate.push(rate);
        relay_cpu.push(cpu);
        let (rate, cpu) = bulk_once(hbone_sink, scale.bulk_bytes).await;
        hbone_rate.push(rate);
        hbone_cpu.push(cpu);
    }
    rows.push(Row {
        bench: "B1 hbone_bulk",
        metric: "throughput (median)",
        ours: median(&mut hbone_rate),
        baseline: median(&mut relay_rate),
        unit: "Gbit/s",
        goal: "≥ 0.70×",
    });
    rows.push(Row {
        bench: "B1 hbone_bulk",
        metric: "CPU-s per GB, whole process (median)",
        ours: median(&mut hbone_cpu),
        baseline: median(&mut relay_cpu),
        unit: "CPU-s/GB",
        goal: "≤ 1.5×",
    });

    // B2: round trips, interleaved per size.
    for (size, bench) in [(1, "B2 hbone_rtt 1 B"), (1024, "B2 hbone_rtt 1 KiB")] {
        let (mut relay_p50, mut relay_p99, mut hbone_p50, mut hbone_p99) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..scale.repetitions {
            let [relay, tunnel] =
                round_trips([relay_echo, hbone_echo], size, scale.round_trips).await;
            relay_p50.push(percentile(&relay, 0.5));
            relay_p99.push(percentile(&relay, 0.99));
            hbone_p50.push(percentile(&tunnel, 0.5));
            hbone_p99.push(percentile(&tunnel, 0.99));
        }
        rows.push(Row {
            bench,
            metric: "p50 round trip",
            ours: median(&mut hbone_p50),
            baseline: median(&mut relay_p50),
            unit: "µs",
            goal: "≤ 1.1× (spec: ≤ 1.05×)",
        });
        rows.push(Row {
            bench,
            metric: "p99 round trip",
            ours: median(&mut hbone_p99),
            baseline: median(&mut relay_p99),
            unit: "µs",
            goal: "≤ 1.25×",
        });
    }

    // B3: connection setup, interleaved.
    let (mut relay_ops, mut stream_ops, mut tunnel_ops) = (vec![], vec![], vec![]);
    for _ in 0..scale.repetitions {
        relay_ops.push(connects(relay_echo, scale.connects).await);
        stream_ops.push(connects(hbone_echo, scale.connects).await);
        tunnel_ops.push(connects(hbone_unpooled, scale.connects / 4).await);
    }
    let relay_connects = median(&mut relay_ops);
    rows.push(Row {
        bench: "B3 hbone_connect (a) pooled stream",
        metric: "new connections/s incl. 1 B echo",
        ours: median(&mut stream_ops),
        baseline: relay_connects,
        unit: "ops/s",
        goal: "≥ 1.0×",
    });
    rows.push(Row {
        bench: "B3 hbone_connect (b) new mTLS tunnel",
        metric: "new connections/s incl. 1 B echo",
        ours: median(&mut tunnel_ops),
        baseline: relay_connects,
        unit: "ops/s",
        goal: "(report)",
    });

    // B9: memory per idle connection.
    let relay_idle = idle_memory(relay_echo, scale.idle).await;
    let stream_idle = idle_memory(hbone_echo, scale.idle).await;
    let tunnel_idle = idle_memory(hbone_unpooled, scale.idle / 4).await;
    rows.push(Row {
        bench: "B9 memory_per_conn idle pooled stream",
        metric: "heap per idle connection, whole path",
        ours: stream_idle / 1024.0,
        baseline: relay_idle / 1024.0,
        unit: "KiB",
        goal: "≤ 8 KiB per stream",
    });
    rows.push(Row {
        bench: "B9 memory_per_conn idle mTLS tunnel",
        metric: "heap per idle connection, whole path",
        ours: tunnel_idle / 1024.0,
        baseline: relay_idle / 1024.0,
        unit: "KiB",
        goal: "≤ 48 KiB per tunnel",
    });

    report(&rows);
}
