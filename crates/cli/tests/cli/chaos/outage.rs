//! PostgreSQL out of reach — cut off behind a TCP proxy the test controls, so the shared
//! server is never stopped: `serve` started during the outage waits for it, and an outage under
//! an MLLP feed is answered AR or not at all (never AA for what was not kept), `/readyz` says
//! 503 while it lasts and 200 after, and nothing acknowledged is lost.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use refloop_testkit::{Backend, MllpClient, TcpProxy, TestDb, ack_code, url_addr};

use super::{lost_and_twice, ref_i12, report, scaled};
use crate::process::{Serve, prepared};

const CONNECTIONS: usize = 4;

#[derive(Default)]
struct Tally {
    acknowledged: Mutex<BTreeSet<String>>,
    /// Answers other than AA, and sends that got no answer.
    refused: AtomicUsize,
    unanswered: AtomicUsize,
    /// AA answers counted since the last reset.
    recent: AtomicUsize,
}

/// Sends numbered messages on one connection until `stop`; a message is sent again until it
/// is acknowledged (after AR, or on a new connection when no answer came).
async fn feed(mllp: SocketAddr, prefix: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut client = MllpClient::connect(mllp).await;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let control = format!("{prefix}N{n}");
        match tokio::time::timeout(Duration::from_secs(30), client.try_send(&ref_i12(&control, 0))).await {
            Ok(Some(ack)) if ack_code(&ack) == "AA" => {
                tally.acknowledged.lock().unwrap().insert(control);
                tally.recent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok(Some(ack)) => {
                assert!(ack.contains("resend later"), "the sender is told to resend: {ack}");
                tally.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {
                tally.unanswered.fetch_add(1, Ordering::Relaxed);
                client = MllpClient::connect(mllp).await;
            }
        }
    }
}

/// Waits (up to a minute) until `n` more messages were acknowledged.
async fn until_acknowledged(tally: &Tally, n: usize) -> bool {
    tally.recent.store(0, Ordering::Relaxed);
    for _ in 0..600 {
        if tally.recent.load(Ordering::Relaxed) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_out_of_reach_at_start_and_under_load_loses_nothing_and_recovers_without_a_restart() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    let proxy = TcpProxy::start(url_addr(&db.url)).await;
    let url = proxy.url_through(&db.url);

    // Started while the database is out of reach, serve waits for it, saying so.
    proxy.cut();
    let launching = Serve::launch(&url, &[], &[]);
    assert!(launching.until_logged("the database cannot be reached yet; waiting").await, "{}", launching.log());
    proxy.restore();
    let serve = launching.listening();
    assert!(serve.until_ready_is(200).await);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let feeders: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(feed(serve.mllp, format!("C{c}"), tally.clone(), stop.clone())))
        .collect();
    let outages = scaled(1, 5);
    for _ in 0..outages {
        assert!(until_acknowledged(&tally, 100).await, "the feed runs");
        proxy.cut();
        assert!(serve.until_ready_is(503).await, "/readyz says 503 while the database is out of reach");
        let before = tally.acknowledged.lock().unwrap().len();
        // The outage lasts ten seconds; whatever is acknowledged meanwhile must still be kept.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let during = tally.acknowledged.lock().unwrap().len() - before;
        assert!(during <= CONNECTIONS, "at most the messages already committed when the cut came: {during}");
        assert_eq!(serve.ready().await, 503);
        proxy.restore();
        assert!(serve.until_ready_is(200).await, "/readyz says 200 once the database is back");
    }
    assert!(until_acknowledged(&tally, 100).await, "the feed runs again without a restart");
    stop.store(true, Ordering::Relaxed);
    for f in feeders {
        f.await.expect("a feeder");
    }
    let refused = tally.refused.load(Ordering::Relaxed) + tally.unanswered.load(Ordering::Relaxed);
    assert!(refused > 0, "messages sent during the outage were refused or unanswered");

    let kept = serve.source_ids(&admin).await;
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let (lost, twice) = lost_and_twice(&kept, &acknowledged);
    report(
        "postgresql out of reach 10 s under an MLLP feed",
        "postgres",
        outages,
        acknowledged.len(),
        lost.len(),
        twice.len(),
    );
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    let log = serve.stop();
    assert!(log.contains("ERROR"), "the outage is logged at error level:\n{log}");
}
