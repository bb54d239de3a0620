//! Every endpoint but health needs a token; roles limit what a token may do.

use refloop_app::Role;
use refloop_testkit::{Backend, TestApp};
use serde_json::json;

async fn health_needs_no_token_and_everything_else_does(b: Backend) {
    let t = TestApp::spawn(b).await;
    for path in ["/healthz", "/readyz"] {
        let r = t.http.get(format!("{}{path}", t.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in ["/api/v1/referrals", "/api/v1/tasks", "/api/v1/outbox", "/api/v1/clock", "/api/v1/openapi.json"] {
        let r = t.http.get(format!("{}{path}", t.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert!(r.headers().contains_key("www-authenticate"));
        let r = t.get_as("rfl_not-a-real-token", path).await;
        assert_eq!(r.status, 401, "{path} with an unknown token");
    }
}

async fn a_viewer_reads_but_cannot_write(b: Backend) {
    let t = TestApp::spawn(b).await;
    let viewer = t.token(Role::Viewer).await;
    let body = json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"});
    let r = t.post_as(&viewer, "/api/v1/referrals", body.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "forbidden");
    assert_eq!(t.get_as(&viewer, "/api/v1/referrals").await.body["items"].as_array().unwrap().len(), 0);
    let id = t.create_referral_id(body).await;
    assert_eq!(t.get_as(&viewer, &format!("/api/v1/referrals/{id}")).await.status, 200);
    let r = t.post_as(&viewer, &format!("/api/v1/referrals/{id}/events"), json!({"type": "scheduled"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(t.post_as(&viewer, "/api/v1/clock/advance", json!({"by": "1d"})).await.status, 403);
}

async fn an_integration_enters_referrals_but_does_not_drive_the_clock(b: Backend) {
    let t = TestApp::spawn(b).await;
    let integration = t.token(Role::Integration).await;
    let body = json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"});
    assert_eq!(t.post_as(&integration, "/api/v1/referrals", body).await.status, 201);
    assert_eq!(t.post_as(&integration, "/api/v1/clock/advance", json!({"by": "1d"})).await.status, 403);
    // Nor does it change the directory, where note requests are sent.
    let entry = json!({"name": "Dr Elsewhere", "specialties": ["cardiology"], "fax": "+15555550100",
        "last_verified": "2026-02-20T00:00:00Z"});
    let put = t.http.put(format!("{}/api/v1/specialists/sp-x", t.base)).bearer_auth(&integration).json(&entry);
    assert_eq!(put.send().await.unwrap().status(), 403);
    let coordinator = t.token(Role::Coordinator).await;
    assert_eq!(t.post_as(&coordinator, "/api/v1/clock/advance", json!({"by": "1d"})).await.status, 403);
}

async fn reads_and_writes_of_patient_data_are_audited(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"}))
        .await;
    t.referral(&id).await;
    t.get("/api/v1/referrals").await;
    let log = t.app.store().audit_log(10).await.unwrap();
    let actions: Vec<(&str, &str)> = log.iter().map(|e| (e.action.as_str(), e.resource_id.as_str())).collect();
    assert!(actions.contains(&("create", id.as_str())), "{actions:?}");
    assert!(actions.contains(&("read", id.as_str())), "{actions:?}");
    assert!(actions.contains(&("list", id.as_str())), "{actions:?}");
    let reads_and_writes = log.iter().filter(|e| e.resource_type != "token");
    assert!(reads_and_writes.clone().count() >= 3 && reads_and_writes.clone().all(|e| e.actor == "admin:test-admin"));
    assert!(reads_and_writes.clone().all(|e| e.remote.as_deref() == Some("127.0.0.1")));
    assert!(log.iter().any(|e| e.action == "create" && e.resource_type == "token"), "token creation is audited");

    // The worklist, the outbox and the inbound lists name what they showed.
    t.advance("8d").await;
    let coordinator = t.token(refloop_app::Role::Coordinator).await;
    for path in ["/api/v1/tasks", "/api/v1/outbox", "/api/v1/inbox", "/api/v1/dead-letters"] {
        assert_eq!(t.get_as(&coordinator, path).await.status, 200, "{path}");
    }
    let log = t.app.store().audit_log(20).await.unwrap();
    let lists: Vec<&str> = log
        .iter()
        .filter(|e| e.actor == "coordinator:test-coordinator" && e.action == "list")
        .map(|e| e.resource_id.as_str())
        .collect();
    assert_eq!(lists, [id.as_str(), id.as_str()], "the tasks and the outbox of the one referral; no inbound rows yet");
}

async fn the_openapi_document_describes_the_api(b: Backend) {
    let t = TestApp::spawn(b).await;
    let r = t.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/referrals",
        "/api/v1/referrals/{id}",
        "/api/v1/referrals/{id}/events",
        "/api/v1/tasks",
        "/api/v1/tasks/{id}/claim",
        "/api/v1/tasks/{id}/complete",
        "/api/v1/clock/advance",
        "/healthz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    assert!(r.body["components"]["schemas"]["CreateReferralBody"]["properties"]["patient_id"].is_object());
    // The closure report's figures, and how its period reads, are documented.
    let report = &r.body["components"]["schemas"]["ClosureReportDoc"]["properties"];
    for field in ["closed_loop_rate", "in_progress", "mature_closed_loop_rate"] {
        assert!(report[field]["description"].is_string(), "{field}: {report}");
    }
    let params = r.body["paths"]["/api/v1/reports/closure"]["get"]["parameters"].as_array().unwrap();
    let to = params.iter().find(|p| p["name"] == "to").unwrap();
    assert!(to["description"].as_str().unwrap().contains("included (the whole day)"), "{to}");
}

on_both_backends!(
    health_needs_no_token_and_everything_else_does,
    a_viewer_reads_but_cannot_write,
    an_integration_enters_referrals_but_does_not_drive_the_clock,
    reads_and_writes_of_patient_data_are_audited,
    the_openapi_document_describes_the_api,
    answers_are_never_cached_sniffed_or_referred,
    a_token_writing_too_fast_waits_while_others_go_on,
);

/// Past `[auth] token_writes_per_minute`, a token's writes get 429 with Retry-After and keep
/// nothing; its reads, and other tokens' writes, go on.
async fn a_token_writing_too_fast_waits_while_others_go_on(b: Backend) {
    let t = TestApp::builder(b).token_writes_per_minute(3).spawn().await;
    let ehr = t.token(refloop_app::Role::Integration).await;
    let order =
        |n: u32| json!({"patient_id": format!("p{n}"), "referring_provider": "dr-a", "specialty": "cardiology"});
    for n in 0..3 {
        assert_eq!(t.post_as(&ehr, "/api/v1/referrals", order(n)).await.status, 201);
    }
    let resp =
        t.http.post(format!("{}/api/v1/referrals", t.base)).bearer_auth(&ehr).json(&order(3)).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(t.get("/api/v1/referrals").await.body["items"].as_array().unwrap().len(), 3, "the fourth was not kept");
    assert_eq!(t.get_as(&ehr, "/fhir/metadata").await.status, 200, "reads go on");
    assert_eq!(t.post("/api/v1/referrals", order(4)).await.status, 201, "another token writes");
}

/// API, FHIR, HL7, error and page answers all say: do not cache (patient data), do not sniff
/// the content type, send no referrer.
async fn answers_are_never_cached_sniffed_or_referred(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"}))
        .await;
    let hl7 = "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||ADT^A04|H1|P|2.5.1\rPID|1||MRN-1^^^NORTH^MR\r";
    let requests = [
        t.http.get(format!("{}/api/v1/referrals/{id}", t.base)).bearer_auth(&t.admin),
        t.http.get(format!("{}/api/v1/no-such-thing", t.base)).bearer_auth(&t.admin),
        t.http.get(format!("{}/api/v1/referrals", t.base)),
        t.http.get(format!("{}/fhir/metadata", t.base)).bearer_auth(&t.admin),
        t.http.get(format!("{}/fhir/ServiceRequest", t.base)).bearer_auth(&t.admin),
        t.http.post(format!("{}/hl7v2", t.base)).bearer_auth(&t.admin).body(hl7),
        t.http.get(format!("{}/login", t.base)),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        let (url, h) = (resp.url().to_string(), resp.headers());
        assert_eq!(h.get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{url}");
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{url}");
        assert_eq!(h.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("no-referrer"), "{url}");
    }
}
