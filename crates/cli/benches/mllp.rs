//! Durable HL7 ingest over MLLP: throughput and ACK latency with 1 and 8 concurrent
//! lock-step connections (and 8 over TLS), on SQLite and (with `BENCH_POSTGRES_URL`) PostgreSQL.
//!
//! `cargo bench -p refloop-cli --bench mllp`. Each message is a new REF^I12 referral:
//! stored raw, applied (referral, patient, events, timers, outbox, task, audit) and
//! committed durably before its AA goes back. `BENCH_MESSAGES` sets the count (4000).

mod common;

use std::{sync::Arc, time::Instant};

use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use refloop_app::{App, AuditEntry, ManualClock, store::AuditStore};
use refloop_connectors::LogOnly;
use refloop_domain::Policy;
use refloop_hl7::{Ingest, ListenerConfig, MapConfig, MllpCodec, serve_mllp, tls_acceptor};
use refloop_store::SqlStore;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::codec::Framed;

fn message(conn: usize, i: usize) -> String {
    format!(
        "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||REF^I12|C{conn}-{i}|P|2.5.1\r\
         RF1|P|R|CAR||O|R{conn}-{i}^EPIC|20260302\rPRD|RP|ADAMS^ANN|||||NPI123\r\
         PID|1||MRN{conn}-{i}^^^NORTH^MR||DOE^JANE\r"
    )
}

async fn client(addr: std::net::SocketAddr, conn: usize, n: usize, tls: bool) -> Vec<f64> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    if tls {
        let name = ServerName::try_from("localhost").expect("a server name");
        let stream = refloop_testkit::tls::connector(None).connect(name, stream).await.expect("a TLS handshake");
        exchange(Framed::new(stream, MllpCodec::new(1 << 20)), conn, n).await
    } else {
        exchange(Framed::new(stream, MllpCodec::new(1 << 20)), conn, n).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut framed: Framed<S, MllpCodec>,
    conn: usize,
    n: usize,
) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        framed.send(message(conn, i).as_bytes()).await.expect("send");
        let ack = framed.next().await.expect("an ACK").expect("a frame");
        assert!(ack.windows(7).any(|w| w == b"MSA|AA|"), "not an AA");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(label: &str, url: &str, total: usize) {
    let store = SqlStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let t0: Timestamp = "2026-03-02T15:00:00Z".parse().unwrap();
    let store = Arc::new(store);
    let app = App::new(store.clone(), Arc::new(ManualClock::new(t0)), Policy::default(), Arc::new(LogOnly));
    let ingest = Ingest::new(app, MapConfig::with_defaults(jiff::tz::TimeZone::UTC)).with_group_commit(256);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_mllp(ingest.clone(), listener, ListenerConfig::default(), std::future::pending()));
    // The same ingest behind a TLS listener (test certificates), measured on 8 connections.
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls_addr = tls_listener.local_addr().expect("addr");
    let file = refloop_testkit::tls::file;
    let acceptor = tls_acceptor(&file("server.pem"), &file("server.key"), None).expect("test certificates");
    let tls_cfg = ListenerConfig { tls: Some(acceptor), ..ListenerConfig::default() };
    tokio::spawn(serve_mllp(ingest, tls_listener, tls_cfg, std::future::pending()));

    for (connections, tls) in [(1usize, false), (8, false), (8, true)] {
        let per = total / connections / if connections == 1 { 4 } else { 1 };
        let (addr, offset) = if tls { (tls_addr, 1000) } else { (addr, 0) };
        let started = Instant::now();
        let tasks: Vec<_> =
            (0..connections).map(|c| tokio::spawn(client(addr, offset + c + connections * 100, per, tls))).collect();
        // Alongside the feed, a coordinator's writes outside any transaction (an audit row
        // per page view, every 10 ms): how long they wait behind the ingest's commits.
        let (done, mut stop) = tokio::sync::watch::channel(false);
        let staff = tokio::spawn(staff_writes(store.clone(), t0, stop.clone()));
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("client"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let _ = done.send(true);
        let _ = stop.changed().await;
        let mut staff = staff.await.expect("staff writes");
        staff.sort_by(f64::total_cmp);
        latencies.sort_by(f64::total_cmp);
        println!(
            "{label:<9} {connections} connection(s){}: {} messages in {elapsed:.2} s = {:.0} msg/s; ACK latency p50 {:.2} ms, p99 {:.2} ms",
            if tls { " over TLS" } else { "" },
            latencies.len(),
            latencies.len() as f64 / elapsed,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
        );
        if connections > 1 && !staff.is_empty() {
            println!(
                "{label:<9}   meanwhile {} staff writes: p50 {:.2} ms, p99 {:.2} ms",
                staff.len(),
                percentile(&staff, 0.50),
                percentile(&staff, 0.99)
            );
        }
    }
}

async fn staff_writes(store: Arc<SqlStore>, at: Timestamp, mut stop: tokio::sync::watch::Receiver<bool>) -> Vec<f64> {
    let entry = AuditEntry {
        at,
        actor: "coordinator:bench".into(),
        action: "read".into(),
        resource_type: "referral".into(),
        resource_id: "ref_bench".into(),
        remote: None,
    };
    let mut latencies = Vec::new();
    while !*stop.borrow_and_update() {
        let started = Instant::now();
        store.audit(&entry).await.expect("an audit row");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
        }
    }
    latencies
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    common::on_each_backend(|label, url| async move { run(label, &url, n).await }).await;
}
