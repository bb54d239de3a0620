//! kill -9 under an 8-connection MLLP feed, several times, on SQLite and PostgreSQL: every
//! acknowledged message is kept, and resends (of every unacknowledged message and a sample of
//! acknowledged ones) are never applied twice.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use refloop_testkit::{Backend, MllpClient, TestDb, ack_code};

use super::{backend_name, lost_and_twice, ref_i12, report, scaled};
use crate::process::{Serve, prepared};

const CONNECTIONS: usize = 8;

/// What one connection of the feed saw before the process died.
struct Fed {
    acknowledged: Vec<String>,
    /// The message in flight when the connection broke (sent, maybe kept, not acknowledged).
    in_flight: Option<String>,
}

/// Sends numbered messages on one connection until it breaks.
async fn feed(mllp: SocketAddr, prefix: String, counter: Arc<AtomicUsize>) -> Fed {
    let mut client = MllpClient::connect(mllp).await;
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let control = format!("{prefix}N{n}");
        match client.try_send(&ref_i12(&control, 0)).await {
            Some(ack) => {
                assert_eq!(ack_code(&ack), "AA", "a healthy process takes every message: {ack}");
                acknowledged.push(control);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            None => return Fed { acknowledged, in_flight: Some(control) },
        }
    }
    unreachable!("the feed runs until the connection breaks")
}

async fn kill_nine_under_an_mllp_feed(backend: Backend) {
    let (kills, per_round) = (scaled(3, 12), scaled(250, 2500));
    let db = TestDb::new(backend).await;
    let admin = prepared(&db.url);
    let mut serve = Serve::start(&db.url, &[], &[]);
    let mut acknowledged = BTreeSet::new();
    let (mut resent_unacknowledged, mut resent_acknowledged) = (0, 0);
    for round in 0..kills {
        let counter = Arc::new(AtomicUsize::new(0));
        let feeders: Vec<_> = (0..CONNECTIONS)
            .map(|c| tokio::spawn(feed(serve.mllp, format!("K{round}C{c}"), counter.clone())))
            .collect();
        for _ in 0..1200 {
            if counter.load(Ordering::Relaxed) >= per_round {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(counter.load(Ordering::Relaxed) >= per_round, "the feed made progress before kill {round}");
        serve.kill();
        let mut in_flight = Vec::new();
        let mut sample = Vec::new();
        for f in feeders {
            let fed = f.await.expect("a feeder");
            sample.extend(fed.acknowledged.iter().rev().take(3).cloned()); // the last ones, near the kill
            acknowledged.extend(fed.acknowledged);
            in_flight.extend(fed.in_flight);
        }
        serve = Serve::start(&db.url, &[], &[]);
        let mut client = MllpClient::connect(serve.mllp).await;
        for control in in_flight.iter().chain(&sample) {
            let ack = client.send(&ref_i12(control, 0)).await;
            assert_eq!(ack_code(&ack), "AA", "a resend is answered AA: {ack}");
            acknowledged.insert(control.clone());
        }
        resent_unacknowledged += in_flight.len();
        resent_acknowledged += sample.len();
    }
    let kept = serve.source_ids(&admin).await;
    let (lost, twice) = lost_and_twice(&kept, &acknowledged);
    let name = backend_name(backend);
    report(
        &format!("kill -9 under an {CONNECTIONS}-connection MLLP feed"),
        name,
        kills,
        acknowledged.len(),
        lost.len(),
        twice.len(),
    );
    println!("  ({resent_unacknowledged} unacknowledged and {resent_acknowledged} acknowledged messages resent)");
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    assert_eq!(kept.len(), acknowledged.len(), "one referral per message, nothing else");
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_under_an_mllp_feed_loses_nothing_acknowledged_and_applies_no_resend_twice_on_sqlite() {
    kill_nine_under_an_mllp_feed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_under_an_mllp_feed_loses_nothing_acknowledged_and_applies_no_resend_twice_on_postgres() {
    kill_nine_under_an_mllp_feed(Backend::Postgres).await;
}
