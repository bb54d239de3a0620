//! HL7 v2 over a real MLLP socket (and POST /hl7v2): a referral's whole life, resends,
//! refusals, dead letters and the review queue.

use refloop_testkit::{Backend, MllpClient, TestApp, ack_code};
use serde_json::{Value, json};

/// An HL7 message from the EHR ("EPIC^NORTH"), segments joined with CR.
fn hl7(control: &str, kind: &str, segments: &[&str]) -> String {
    let mut s = format!("MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000-0500||{kind}|{control}|P|2.5.1\r");
    for seg in segments {
        s.push_str(seg);
        s.push('\r');
    }
    s
}

const PID: &str = "PID|1||MRN1^^^NORTH^MR||DOE^JANE||19700101|F|||||^PRN^PH^^1^555^5550123";

fn ref_i12(control: &str, number: &str) -> String {
    hl7(
        control,
        "REF^I12^REF_I12",
        &[
            &format!("RF1|P|R|CAR^Cardiology||O|{number}^EPIC|20260302"),
            "PRD|RP|ADAMS^ANN|||||NPI123^NPI",
            "PRD|RT|CHEN^LI^^^DR",
            PID,
        ],
    )
}

fn siu(control: &str, trigger: &str, number: &str, status: &str, start: &str) -> String {
    let mut sch = vec![String::new(); 27];
    sch[0] = "SCH".into();
    sch[1] = format!("A{control}");
    sch[2] = format!("F{control}");
    sch[25] = status.into();
    sch[26] = number.into();
    let sch = sch.join("|");
    hl7(control, &format!("SIU^{trigger}^SIU_S12"), &[&sch, &format!("TQ1|||||||{start}"), PID])
}

fn mdm(control: &str, number: &str) -> String {
    hl7(
        control,
        "MDM^T02^MDM_T02",
        &[
            "EVN|T02|20260320090000-0500",
            PID,
            &format!("TXA|1|CN|TX|20260320090000-0500||||||||DOC-{control}||{number}|||AU"),
            "OBX|1|TX|11488-4^Consult note^LN||Seen.||||||F",
        ],
    )
}

async fn referrals(t: &TestApp) -> Vec<Value> {
    t.get("/api/v1/referrals").await.body["items"].as_array().cloned().unwrap_or_default()
}

async fn only_referral(t: &TestApp) -> Value {
    let all = referrals(t).await;
    assert_eq!(all.len(), 1, "{all:?}");
    t.referral(all[0]["id"].as_str().unwrap()).await
}

fn msa(ack: &str) -> (String, String) {
    let m = refloop_hl7::parse(ack.as_bytes()).unwrap();
    let msa = m.segment("MSA").unwrap();
    (msa.get(1, 1).unwrap_or_default().to_owned(), msa.get(2, 1).unwrap_or_default().to_owned())
}

async fn a_referral_closes_its_loop_over_mllp(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    assert_eq!(msa(&c.send(&ref_i12("M1", "R-100")).await), ("AA".into(), "M1".into()));
    let r = only_referral(&t).await;
    assert_eq!(
        (r["state"].as_str(), r["specialty"].as_str(), r["patient_id"].as_str()),
        (Some("ordered"), Some("cardiology"), Some("MRN1"))
    );
    assert_eq!(r["referring_provider"], "NPI123");
    assert_eq!(r["source_ids"], json!(["R-100"]));

    assert_eq!(ack_code(&c.send(&siu("M2", "S12", "R-100", "Booked", "20260310140000-0500")).await), "AA");
    let r = only_referral(&t).await;
    assert_eq!(
        (r["state"].as_str(), r["appointment_at"].as_str()),
        (Some("scheduled"), Some("2026-03-10T19:00:00.000Z"))
    );

    assert_eq!(ack_code(&c.send(&siu("M3", "S26", "R-100", "Noshow", "20260310140000-0500")).await), "AA");
    let r = only_referral(&t).await;
    assert_eq!(
        (r["state"].as_str(), r["no_shows"].as_u64()),
        (Some("patient-notified"), Some(1)),
        "back to awaiting scheduling"
    );

    c.send(&siu("M4", "S12", "R-100", "Booked", "20260317140000-0500")).await;
    assert_eq!(only_referral(&t).await["state"], "scheduled");
    c.send(&siu("M5", "S14", "R-100", "Complete", "20260317140000-0500")).await;
    assert_eq!(only_referral(&t).await["state"], "attended");
    assert_eq!(ack_code(&c.send(&mdm("M6", "R-100")).await), "AA");
    let r = only_referral(&t).await;
    assert_eq!(r["state"], "note-received");
    let sources: Vec<&str> = r["events"].as_array().unwrap().iter().filter_map(|e| e["source"].as_str()).collect();
    assert!(sources.iter().all(|s| s.contains("hl7v2/inb_") || *s == "system:outbox"), "{sources:?}");
}

async fn enhanced_mode_over_mllp_sends_the_accept_then_the_application_ack(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    let al_al = ref_i12("N1", "R-700").replace("|P|2.5.1", "|P|2.5.1|||AL|AL");
    assert_eq!(msa(&c.send(&al_al).await), ("CA".into(), "N1".into()));
    assert_eq!(msa(&c.next().await), ("AA".into(), "N1".into()), "the application ACK follows");
    // A resend gets both again; ER|SU on a refused message: only the accept error.
    assert_eq!(msa(&c.send(&al_al).await).0, "CA");
    assert_eq!(msa(&c.next().await).0, "AA");
    let bad = hl7("N2", "REF^I12", &["RF1|P|R|CAR||O", PID]).replace("|P|2.5.1", "|P|2.5.1|||ER|SU");
    assert_eq!(msa(&c.send(&bad).await), ("CE".into(), "N2".into()));
    let next = ref_i12("N3", "R-701");
    assert_eq!(msa(&c.send(&next).await), ("AA".into(), "N3".into()), "no application ACK was due for N2");
}

async fn a_ref_i14_or_an_orc_ca_cancels_the_referral(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    c.send(&ref_i12("C1", "R-200")).await;
    let i14 = hl7("C2", "REF^I14^REF_I12", &["RF1|P|R|CAR||O|R-200^EPIC", PID]);
    assert_eq!(ack_code(&c.send(&i14).await), "AA");
    assert_eq!(only_referral(&t).await["state"], "cancelled");

    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    let nw = hl7("O1", "ORM^O01", &[PID, "ORC|NW|O-7^EPIC||||||||||NPI9^ROE^RAY", "OBR|1|O-7||CAR^Cardiology consult"]);
    assert_eq!(ack_code(&c.send(&nw).await), "AA");
    assert_eq!(only_referral(&t).await["specialty"], "cardiology");
    let ca = hl7("O2", "ORM^O01", &[PID, "ORC|CA|O-7^EPIC"]);
    assert_eq!(ack_code(&c.send(&ca).await), "AA");
    assert_eq!(only_referral(&t).await["state"], "cancelled");
}

async fn a_resent_message_gets_the_same_answer_and_is_applied_once(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    let first = c.send(&ref_i12("D1", "R-300")).await;
    let again = c.send(&ref_i12("D1", "R-300")).await;
    assert_eq!(first, again, "the same ACK, byte for byte");
    assert_eq!(referrals(&t).await.len(), 1);
    let inbox = t.get("/api/v1/inbox").await.body["items"].as_array().unwrap().len();
    assert_eq!(inbox, 1);
    // The same order under a new control id updates the referral instead of adding one.
    c.send(&ref_i12("D2", "R-300")).await;
    assert_eq!(referrals(&t).await.len(), 1);
}

async fn bad_messages_get_ae_or_ar_with_err_and_change_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    let no_number = hl7("E1", "REF^I12", &["RF1|P|R|CAR||O", PID]);
    let ack = c.send(&no_number).await;
    let m = refloop_hl7::parse(ack.as_bytes()).unwrap();
    assert_eq!(msa(&ack), ("AE".into(), "E1".into()));
    let err = m.segment("ERR").unwrap();
    assert_eq!((err.get(2, 1), err.get(2, 3), err.get(3, 1)), (Some("RF1"), Some("6"), Some("101")));
    let ack = c.send(&hl7("E2", "ADT^A01", &[PID])).await;
    assert_eq!(msa(&ack).0, "AR");
    assert_eq!(refloop_hl7::parse(ack.as_bytes()).unwrap().segment("ERR").unwrap().get(3, 1), Some("201"));
    assert_eq!(msa(&c.send("this is not HL7").await).0, "AR");
    let old = ref_i12("E3", "R-9").replace("|P|2.5.1", "|P|3.0");
    assert_eq!(msa(&c.send(&old).await).0, "AR");
    assert!(referrals(&t).await.is_empty());
    let rejected = t.get("/api/v1/inbox?status=rejected").await.body["items"].as_array().unwrap().len();
    assert_eq!(rejected, 4, "every refused message is kept with its outcome");
}

async fn an_ack_is_never_acknowledged(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    c.send_unanswered(&hl7("K1", "ACK^I12^ACK", &["MSA|AA|X9"])).await;
    let next = c.send(&ref_i12("K2", "R-400")).await;
    assert_eq!(msa(&next).1, "K2", "the first answer on the connection is for the second message");
}

async fn an_unknown_referral_number_is_a_dead_letter_until_retried(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    let i14 = hl7("L1", "REF^I14^REF_I12", &["RF1|P|R|CAR||O|LATE-1^EPIC", PID]);
    assert_eq!(ack_code(&c.send(&i14).await), "AA", "stored, so acknowledged");
    let dead = t.get("/api/v1/dead-letters").await.body["items"].as_array().cloned().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["status"], "dead");
    assert!(dead[0]["error"].as_str().unwrap().contains("LATE-1"));
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    let shown = t.get(&format!("/api/v1/inbox/{id}")).await;
    assert!(shown.body["raw"].as_str().unwrap().starts_with("MSH|"));

    c.send(&ref_i12("L2", "LATE-1")).await;
    let r = t.post(&format!("/api/v1/inbox/{id}/retry"), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "applied");
    assert_eq!(only_referral(&t).await["state"], "cancelled");
    assert_eq!(t.post(&format!("/api/v1/inbox/{id}/retry"), json!({})).await.status, 409, "applied already");
}

/// `[retention] raw_messages` (400 days by default): a settled message's body is emptied,
/// its id, sender, outcome and ACK stay; a dead letter keeps its body for the person who
/// settles it.
async fn raw_bodies_of_settled_messages_are_emptied_after_their_retention(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    assert_eq!(ack_code(&c.send(&ref_i12("K1", "R-KEEP")).await), "AA");
    let late = hl7("K2", "REF^I14^REF_I12", &["RF1|P|R|CAR||O|LATE-9^EPIC", PID]);
    assert_eq!(ack_code(&c.send(&late).await), "AA");
    let items = t.get("/api/v1/inbox?limit=10").await.body["items"].as_array().cloned().unwrap();
    let id_of = |status: &str| items.iter().find(|m| m["status"] == status).unwrap()["id"].as_str().unwrap().to_owned();
    let (applied, dead) = (id_of("applied"), id_of("dead"));
    let raw = |id: String| {
        let t = &t;
        async move { t.get(&format!("/api/v1/inbox/{id}")).await.body }
    };
    t.advance("399d").await;
    assert!(raw(applied.clone()).await["raw"].as_str().unwrap().starts_with("MSH|"), "kept within the retention");
    t.advance("2d").await;
    let shown = raw(applied.clone()).await;
    assert_eq!(shown["raw"].as_str().unwrap_or_default(), "", "emptied: {shown}");
    assert_eq!((shown["status"].as_str(), shown["control_id"].as_str()), (Some("applied"), Some("K1")));
    assert!(shown["ack"].as_str().unwrap().contains("MSA|AA"), "the ACK stays: {shown}");
    assert!(raw(dead).await["raw"].as_str().unwrap().starts_with("MSH|"), "a dead letter keeps its body");
    // A resend is still answered from the row, never applied again.
    assert_eq!(ack_code(&c.send(&ref_i12("K1", "R-KEEP")).await), "AA");
    assert_eq!(referrals(&t).await.len(), 1);
}

async fn a_match_that_is_not_certain_goes_to_review(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    c.send(&ref_i12("V1", "R-500")).await;
    let derm = ref_i12("V2", "R-501").replace("CAR^Cardiology", "DERM^Dermatology");
    c.send(&derm).await;
    // A visit with no referral number and no specialty: which referral? A person decides.
    let visit = hl7("V3", "ADT^A04^ADT_A01", &[PID, "PV1|1|O|CLINIC"]);
    assert_eq!(ack_code(&c.send(&visit).await), "AA");
    let review = t.get("/api/v1/inbox?status=review").await.body["items"].as_array().cloned().unwrap();
    assert_eq!(review.len(), 1);
    assert!(referrals(&t).await.iter().all(|r| r["state"] == "ordered"));
    // The review queue is on the worklist: a task on each candidate, naming the message.
    let inbox_id = review[0]["id"].as_str().unwrap().to_owned();
    let tasks = t.get("/api/v1/tasks?status=open").await.body["items"].as_array().cloned().unwrap();
    let review_tasks: Vec<&Value> = tasks.iter().filter(|t| t["kind"] == "review-match").collect();
    assert_eq!(review_tasks.len(), 2);
    assert!(review_tasks.iter().all(|t| t["inbox_id"] == inbox_id.as_str()));
    assert_eq!(review_tasks[0]["outcomes"], json!([]), "settled through the message");
    // Closing a review task alone would leave the message unsettled: refused.
    let r = t.post(&format!("/api/v1/tasks/{}/complete", review_tasks[0]["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // A coordinator decides it was the dermatology visit.
    let derm_id = referrals(&t).await.iter().find(|r| r["specialty"] == "dermatology").unwrap()["id"].clone();
    let r = t.post(&format!("/api/v1/inbox/{inbox_id}/apply"), json!({"referral_id": derm_id})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "applied");
    assert_eq!(t.referral(derm_id.as_str().unwrap()).await["state"], "attended");
    let open = t.get("/api/v1/tasks?status=open").await.body["items"].as_array().cloned().unwrap();
    assert!(open.iter().all(|t| t["kind"] != "review-match"), "applying closed the review tasks");
    // With the specialty the match is certain.
    let visit = hl7("V4", "ADT^A04^ADT_A01", &[PID, "PV1|1|O|CLINIC|||||||CAR"]);
    c.send(&visit).await;
    let states: Vec<Value> = referrals(&t).await.iter().map(|r| json!([r["specialty"], r["state"]])).collect();
    assert!(
        states.contains(&json!(["cardiology", "attended"])) && states.contains(&json!(["dermatology", "attended"])),
        "{states:?}"
    );
}

async fn post_hl7v2_answers_with_the_ack(b: Backend) {
    let t = TestApp::spawn(b).await;
    let url = format!("{}/hl7v2", t.base);
    let resp = t.http.post(&url).body(ref_i12("H1", "R-600")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(ref_i12("H1", "R-600")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(msa(&resp.text().await.unwrap()), ("AA".into(), "H1".into()));
    assert_eq!(referrals(&t).await.len(), 1);
    // Enhanced mode: MSH-15 AL asks for a commit accept, NE for no answer at all.
    let al = ref_i12("H2", "R-601").replace("|P|2.5.1", "|P|2.5.1|||AL|NE");
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(al).send().await.unwrap();
    assert_eq!(msa(&resp.text().await.unwrap()).0, "CA");
    let ne = ref_i12("H3", "R-602").replace("|P|2.5.1", "|P|2.5.1|||NE|NE");
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(ne).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(referrals(&t).await.len(), 3);
    // ER: answer only on error (an AE becomes CE).
    let er_ok = ref_i12("H4", "R-603").replace("|P|2.5.1", "|P|2.5.1|||ER|NE");
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(er_ok).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let er_bad = hl7("H5", "REF^I12", &["RF1|P|R|CAR||O", PID]).replace("|P|2.5.1", "|P|2.5.1|||ER|NE");
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(er_bad).send().await.unwrap();
    assert_eq!(msa(&resp.text().await.unwrap()), ("CE".into(), "H5".into()));
    // NE|AL over HTTP: no accept ACK, so the application ACK is the answer.
    let app_only = ref_i12("H6", "R-604").replace("|P|2.5.1", "|P|2.5.1|||NE|AL");
    let resp = t.http.post(&url).bearer_auth(&t.admin).body(app_only).send().await.unwrap();
    assert_eq!(msa(&resp.text().await.unwrap()), ("AA".into(), "H6".into()));
}

async fn eight_connections_at_once_lose_nothing_and_apply_nothing_twice(b: Backend) {
    let t = TestApp::spawn(b).await;
    let clients = (0..8).map(|c| {
        let addr = t.mllp;
        tokio::spawn(async move {
            let mut conn = MllpClient::connect(addr).await;
            let mut acks = Vec::new();
            for i in 0..15 {
                acks.push(conn.send(&ref_i12(&format!("G{c}-{i}"), &format!("R-G{c}-{i}"))).await);
            }
            // Every connection also sends the same shared message: one copy is applied.
            acks.push(conn.send(&ref_i12("SHARED", "R-SHARED")).await);
            acks
        })
    });
    let mut shared = Vec::new();
    for client in clients.collect::<Vec<_>>() {
        let acks = client.await.unwrap();
        assert!(acks.iter().all(|a| ack_code(a) == "AA"));
        shared.push(acks.last().unwrap().clone());
    }
    assert!(shared.windows(2).all(|w| w[0] == w[1]), "the shared message got one answer");
    let count = t.get("/api/v1/referrals?limit=200").await.body["items"].as_array().unwrap().len();
    assert_eq!(count, 8 * 15 + 1);
    let inbox = t.get("/api/v1/inbox?limit=500").await.body["items"].as_array().unwrap().len();
    assert_eq!(inbox, 8 * 15 + 1);
}

async fn idle_and_oversized_connections_are_closed(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestApp::spawn(b).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = refloop_hl7::ListenerConfig {
        max_message: 2048,
        idle_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    tokio::spawn(refloop_hl7::serve_mllp(t.ingest.clone(), listener, cfg, std::future::pending()));
    let within = std::time::Duration::from_secs(10);

    // Idle: the server closes the connection on its own.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(within, idle.read(&mut buf)).await.expect("closed before the deadline").unwrap();
    assert_eq!(n, 0, "EOF from an idle connection");

    // Oversized: an AR, then the connection is closed; nothing stored.
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut frame = vec![0x0B];
    frame.extend_from_slice(ref_i12("Z1", "R-Z").as_bytes());
    frame.extend(std::iter::repeat_n(b'X', 4096));
    big.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(within, big.read_to_end(&mut answer)).await.expect("closed before the deadline").unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("MSA|AR|"), "{text}");
    assert!(referrals(&t).await.is_empty());

    // A message started and then trickled, byte by byte: closed after the frame timeout, long
    // before the idle timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = refloop_hl7::ListenerConfig {
        idle_timeout: std::time::Duration::from_secs(600),
        frame_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    tokio::spawn(refloop_hl7::serve_mllp(t.ingest.clone(), listener, cfg, std::future::pending()));
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"\x0bMSH|^~\\&|EPIC|NORTH").await.unwrap();
    let trickle = async {
        loop {
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(within, trickle).await.expect("the stalled message's connection is closed");
    assert!(referrals(&t).await.is_empty());
}

async fn metrics_count_messages_by_type_and_outcome(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    c.send(&ref_i12("P1", "R-P")).await;
    c.send(&hl7("P2", "ADT^A01", &[PID])).await;
    // Message types are labels only when refloop takes them: anything else is `other`, so a
    // sender cannot make new series at will.
    for i in 0..5 {
        c.send(&hl7(&format!("Q{i}"), &format!("ZZ{i}^X{i}"), &[PID])).await;
    }
    let resp = t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let line = |needle: &str| text.lines().any(|l| l.starts_with("refloop_hl7_messages_total") && l.contains(needle));
    assert!(line(r#"type="REF^I12""#) && line(r#"ack="AA""#), "{text}");
    assert!(line(r#"type="other""#) && line(r#"status="rejected""#), "{text}");
    assert!(!text.contains("ADT^A01") && !text.contains("ZZ"), "{text}");
    assert!(text.contains("refloop_hl7_apply_seconds"), "{text}");
    assert_eq!(t.http.get(format!("{}/metrics", t.base)).send().await.unwrap().status(), 401);
}

async fn two_processes_given_the_same_message_apply_it_once(b: Backend) {
    let t = TestApp::spawn(b).await;
    let other = t.another_process().await;
    for i in 0..20 {
        let m = ref_i12(&format!("X{i}"), &format!("R-X{i}"));
        let via = mllp();
        let (first, second) = tokio::join!(t.ingest.receive(m.as_bytes(), &via), other.receive(m.as_bytes(), &via));
        let (first, second) = (first.expect("stored"), second.expect("stored"));
        assert_eq!(first.ack, second.ack, "both senders get the same answer");
        assert_eq!(ack_code(&String::from_utf8(first.ack.unwrap()).unwrap()), "AA");
        assert!(first.duplicate ^ second.duplicate, "exactly one copy was applied");
    }
    assert_eq!(t.get("/api/v1/referrals?limit=200").await.body["items"].as_array().unwrap().len(), 20);
    assert_eq!(t.get("/api/v1/inbox?limit=200").await.body["items"].as_array().unwrap().len(), 20);
}

async fn a_duplicate_order_in_the_same_group_commit_is_linked(b: Backend) {
    let t = TestApp::spawn(b).await;
    // One order before, two in one batch (same patient, same specialty): both later ones
    // are duplicates of the first.
    t.ingest.receive(ref_i12("U1", "R-800").as_bytes(), &mllp()).await.unwrap();
    let batch: Vec<(Vec<u8>, refloop_app::Via)> =
        [ref_i12("U2", "R-801"), ref_i12("U3", "R-802")].into_iter().map(|m| (m.into_bytes(), mllp())).collect();
    let replies = t.ingest.receive_many(&batch).await;
    assert!(replies.iter().all(|r| r.as_ref().is_ok_and(|r| r.code == refloop_hl7::AckCode::AA)));
    let all = referrals(&t).await;
    assert_eq!(all.len(), 3);
    let first = all.iter().find(|r| r["source_ids"][0] == "R-800").unwrap()["id"].clone();
    let dups: Vec<&Value> = all.iter().filter(|r| r["duplicate_of"] == first).collect();
    assert_eq!(dups.len(), 2, "{all:?}");
}

async fn a_group_commit_tells_resends_from_new_messages_by_sender_and_control_id(b: Backend) {
    let t = TestApp::spawn(b).await;
    let first = t.ingest.receive(ref_i12("G1", "R-900").as_bytes(), &mllp()).await.unwrap();
    // The same control id from another sender is a different message.
    let other_sender = ref_i12("G1", "R-901").replace("|EPIC|NORTH|", "|CERNER|SOUTH|");
    let batch: Vec<(Vec<u8>, refloop_app::Via)> =
        [ref_i12("G1", "R-900"), other_sender, ref_i12("G2", "R-902"), ref_i12("G2", "R-902")]
            .into_iter()
            .map(|m| (m.into_bytes(), mllp()))
            .collect();
    let replies: Vec<_> = t.ingest.receive_many(&batch).await.into_iter().map(|r| r.expect("stored")).collect();
    assert!(replies[0].duplicate && replies[0].ack == first.ack, "a resend of a stored message: the same answer");
    assert!(!replies[1].duplicate && replies[1].inbox_id != first.inbox_id, "another sender's G1 is new");
    assert!(!replies[2].duplicate && replies[3].duplicate && replies[2].ack == replies[3].ack);
    assert!(replies.iter().all(|r| r.code == refloop_hl7::AckCode::AA));
    let numbers: std::collections::BTreeSet<String> =
        referrals(&t).await.iter().map(|r| r["source_ids"][0].as_str().unwrap().to_owned()).collect();
    assert_eq!(numbers.into_iter().collect::<Vec<_>>(), ["R-900", "R-901", "R-902"]);
    assert_eq!(t.get("/api/v1/inbox").await.body["items"].as_array().unwrap().len(), 3);
}

on_both_backends!(
    inbound_audit_rows_name_the_sender_and_the_address,
    a_group_commit_tells_resends_from_new_messages_by_sender_and_control_id,
    a_duplicate_order_in_the_same_group_commit_is_linked,
    enhanced_mode_over_mllp_sends_the_accept_then_the_application_ack,
    two_processes_given_the_same_message_apply_it_once,
    idle_and_oversized_connections_are_closed,
    metrics_count_messages_by_type_and_outcome,
    eight_connections_at_once_lose_nothing_and_apply_nothing_twice,
    a_referral_closes_its_loop_over_mllp,
    a_ref_i14_or_an_orc_ca_cancels_the_referral,
    a_resent_message_gets_the_same_answer_and_is_applied_once,
    bad_messages_get_ae_or_ar_with_err_and_change_nothing,
    an_ack_is_never_acknowledged,
    an_unknown_referral_number_is_a_dead_letter_until_retried,
    dead_letters_piling_up_are_told_once_when_they_start_and_once_when_they_clear,
    raw_bodies_of_settled_messages_are_emptied_after_their_retention,
    a_match_that_is_not_certain_goes_to_review,
    post_hl7v2_answers_with_the_ack,
    an_order_a_little_ahead_of_our_clock_is_taken_and_one_far_ahead_refused,
);

async fn an_order_a_little_ahead_of_our_clock_is_taken_and_one_far_ahead_refused(b: Backend) {
    let t = TestApp::spawn(b).await; // the clock reads 2026-03-02T15:00:00Z
    let order = |control: &str, at: &str| {
        format!(
            "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|{at}||REF^I12^REF_I12|{control}|P|2.5.1\r\
             RF1|P|R|CAR^Cardiology||O|R-{control}^EPIC|{at}\rPRD|RP|ADAMS^ANN|||||NPI123^NPI\r{PID}\r"
        )
    };
    // An EHR whose clock runs three hours fast: taken as it is.
    let fast = t.ingest.receive(order("SKEW1", "20260302130000-0500").as_bytes(), &mllp()).await.unwrap();
    assert_eq!(fast.code, refloop_hl7::AckCode::AA);
    let all = referrals(&t).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["ordered_at"], "2026-03-02T18:00:00.000Z", "{all:?}");
    // Two days ahead: refused with AE, no referral and no dead letter.
    let far = t.ingest.receive(order("SKEW2", "20260304100000-0500").as_bytes(), &mllp()).await.unwrap();
    assert_eq!(far.code, refloop_hl7::AckCode::AE);
    let ack = String::from_utf8(far.ack.clone().unwrap()).unwrap();
    assert!(ack.contains("future_tolerance"), "{ack}");
    assert_eq!(referrals(&t).await.len(), 1);
    let dead = t.get("/api/v1/inbox?status=dead").await;
    assert_eq!(dead.body["items"].as_array().map(Vec::len), Some(0), "{:?}", dead.body);
}

/// As the MLLP listener hands messages over: from a loopback peer.
fn mllp() -> refloop_app::Via {
    refloop_app::Via::mllp(Some("127.0.0.1".into()))
}

/// What an inbound message changed is audited under the message, its sender (MSH-3^MSH-4
/// over MLLP, the token's name over HTTP) and the address it came from; the inbox keeps how
/// it arrived.
async fn inbound_audit_rows_name_the_sender_and_the_address(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut c = MllpClient::connect(t.mllp).await;
    assert_eq!(msa(&c.send(&ref_i12("AU1", "R-AU1")).await).0, "AA");
    let ehr = t.token(refloop_app::Role::Integration).await;
    let resp =
        t.http.post(format!("{}/hl7v2", t.base)).bearer_auth(&ehr).body(ref_i12("AU2", "R-AU2")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let audit = t.app.store().audit_log(20).await.unwrap();
    let created: Vec<(&str, Option<&str>)> = audit
        .iter()
        .filter(|a| a.action == "create" && a.resource_type == "referral")
        .map(|a| (a.actor.split(" from ").nth(1).unwrap_or("-"), a.remote.as_deref()))
        .collect();
    assert_eq!(created, [("test-integration", Some("127.0.0.1")), ("EPIC^NORTH", Some("127.0.0.1"))], "{audit:?}");
    assert!(audit.iter().all(|a| a.resource_type != "referral" || a.actor.starts_with("system:hl7v2/inb_")));
    let inbox = t.app.store().inbox(&refloop_app::InboxFilter { status: None, limit: 5 }).await.unwrap();
    let via: Vec<&str> = inbox.iter().map(|m| m.transport.as_str()).collect();
    assert_eq!(via, ["http from 127.0.0.1 (token test-integration)", "mllp from 127.0.0.1"]);
}

/// Dead letters piling up are an operational problem: posted to the team chat once when it
/// starts (by one of two processes watching the same database) and once when it clears.
async fn dead_letters_piling_up_are_told_once_when_they_start_and_once_when_they_clear(b: Backend) {
    use refloop_app::problems::ProblemSettings;
    let chat = refloop_testkit::FakeChat::start().await;
    let settings = ProblemSettings { dead_letters: 2, ..Default::default() };
    let t = TestApp::builder(b).chat(&chat).problems(settings.clone()).spawn().await;
    let other = t.another_problem_watcher(&chat, settings).await;
    let mut c = MllpClient::connect(t.mllp).await;
    c.send(&hl7("D1", "REF^I14^REF_I12", &["RF1|P|R|CAR||O|LATE-1^EPIC", PID])).await;
    assert!(t.app.check_problems().await.unwrap().is_empty(), "one dead letter is under the threshold");
    c.send(&hl7("D2", "REF^I14^REF_I12", &["RF1|P|R|CAR||O|LATE-2^EPIC", PID])).await;
    let (a, b2) = tokio::join!(t.app.check_problems(), other.check_problems());
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert_eq!(a.len() + b2.len(), 1, "one of the two processes tells it: {a:?} {b2:?}");
    assert!(t.app.check_problems().await.unwrap().is_empty() && other.check_problems().await.unwrap().is_empty());
    assert_eq!(chat.texts().len(), 1);
    assert!(chat.texts()[0].contains("refloop problem: 2 inbound messages failed to apply"), "{:?}", chat.texts());

    // The orders arrive; the dead letters are retried and apply: cleared, told once.
    c.send(&ref_i12("D3", "LATE-1")).await;
    c.send(&ref_i12("D4", "LATE-2")).await;
    let dead = t.get("/api/v1/dead-letters").await.body["items"].as_array().cloned().unwrap();
    for d in dead {
        let r = t.post(&format!("/api/v1/inbox/{}/retry", d["id"].as_str().unwrap()), json!({})).await;
        assert_eq!(r.body["status"], "applied");
    }
    let cleared = [t.app.check_problems().await.unwrap(), other.check_problems().await.unwrap()].concat();
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    let texts = chat.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].starts_with("refloop problem cleared: dead-letters"), "{texts:?}");
    assert!(!texts.concat().contains("MRN1") && !texts.concat().contains("DOE"), "no patient data: {texts:?}");
}
