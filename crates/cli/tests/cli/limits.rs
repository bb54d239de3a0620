//! Availability: connections that trickle their request headers are closed after the header
//! timeout while others are served, and each listener (HTTP, MLLP) turns away connections
//! beyond its caps.

use std::time::Duration;

use refloop_testkit::{Backend, MllpClient, TestDb, ack_code};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::process::Serve;

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Whether the server closes `stream` within `within` (reads until end of stream).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trickling_connections_are_closed_after_the_header_timeout_while_others_are_served() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("REFLOOP_SERVER_HEADER_TIMEOUT", "1s"), ("REFLOOP_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "500")];
    let s = Serve::start(&db.url, &env, &[]);
    let addr = host_port(&s.base);
    let mut tricklers = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(&addr).await.expect("connect");
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: refloop\r\nX-Slow: ").await.expect("a first part");
        tricklers.push(c);
    }
    // While they trickle, a normal request is answered.
    let trickle = async {
        for _ in 0..5 {
            for c in tricklers.iter_mut() {
                let _ = c.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (_, normal) = tokio::join!(trickle, reqwest::get(format!("{}/healthz", s.base)));
    assert_eq!(normal.expect("a normal request").status(), 200);
    let mut closed = 0;
    for c in tricklers.iter_mut() {
        if closed_within(c, Duration::from_secs(10)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 200, "every trickling connection is closed after the header timeout");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_cap_from_one_address_are_turned_away() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = [("REFLOOP_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "5"), ("REFLOOP_SERVER_HEADER_TIMEOUT", "60s")];
    let s = Serve::start(&db.url, &env, &[]);
    let addr = host_port(&s.base);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut sixth = TcpStream::connect(&addr).await.expect("the socket connects");
    assert!(closed_within(&mut sixth, Duration::from_secs(10)).await, "a sixth HTTP connection is closed at once");
    open.pop();
    // Its place is back (the server notices the close when it reads).
    let mut answered = false;
    for _ in 0..50 {
        if reqwest::get(format!("{}/healthz", s.base)).await.is_ok_and(|r| r.status() == 200) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "a closed connection gives its place back");
    drop(open);

    // MLLP keeps the same caps.
    let mut mllp = Vec::new();
    for _ in 0..5 {
        mllp.push(TcpStream::connect(s.mllp).await.expect("connect"));
    }
    let mut sixth = TcpStream::connect(s.mllp).await.expect("the socket connects");
    assert!(closed_within(&mut sixth, Duration::from_secs(10)).await, "a sixth MLLP connection is closed at once");
    drop(mllp);
    let mut answered = false;
    for _ in 0..50 {
        let mut c = MllpClient::connect(s.mllp).await;
        let message =
            "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||ADT^A04|L1|P|2.5.1\rPID|1||MRN-1^^^NORTH^MR\r";
        if c.try_send(message).await.is_some_and(|ack| ack_code(&ack) == "AA") {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "MLLP serves again once connections close");
    let log = s.stop();
    assert!(log.contains("HTTP connection turned away") && log.contains("MLLP connection turned away"), "{log}");
}

/// `[server] tls_cert`/`tls_key`: the HTTP listener speaks HTTPS only, and answers carry HSTS
/// beside the other security headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_is_served_with_hsts_and_plain_http_gets_nothing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (cert, key) = (refloop_testkit::tls::file("server.pem"), refloop_testkit::tls::file("server.key"));
    let env = [("REFLOOP_SERVER_TLS_CERT", cert.to_str().unwrap()), ("REFLOOP_SERVER_TLS_KEY", key.to_str().unwrap())];
    let s = Serve::start(&db.url, &env, &[]);
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let ca = std::fs::read(refloop_testkit::tls::file("ca.pem")).unwrap();
    let client =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]).build().unwrap();
    let url = s.base.replace("127.0.0.1", "localhost");
    let resp = client.get(format!("{url}/healthz")).send().await.expect("an HTTPS answer");
    assert_eq!(resp.status(), 200);
    let hsts = resp.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    assert_eq!(resp.headers().get("x-content-type-options").unwrap(), "nosniff");
    let plain = reqwest::get(format!("{}/healthz", s.base.replace("https://", "http://"))).await;
    assert!(plain.is_err(), "plain HTTP is not answered: {plain:?}");
    s.stop();
}
