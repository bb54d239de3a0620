//! The referral list: filters and cursor paging.

use std::collections::HashSet;

use refloop_testkit::{Backend, TestApp};
use serde_json::json;

async fn the_list_filters_and_pages_without_gaps_or_repeats(b: Backend) {
    let t = TestApp::spawn(b).await;
    for i in 0..7 {
        let specialty = if i % 2 == 0 { "cardiology" } else { "dermatology" };
        let provider = if i < 3 { "dr-a" } else { "dr-b" };
        t.create_referral(json!({
            "patient_id": format!("p{i}"),
            "referring_provider": provider,
            "specialty": specialty,
            "ordered_at": format!("2026-03-01T0{i}:00:00Z"),
        }))
        .await;
    }
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = t.get(&format!("/api/v1/referrals?limit=3&cursor={cursor}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        for item in items {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "repeated {item}");
        }
        pages += 1;
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (7, 3));

    let newest = t.get("/api/v1/referrals?limit=1").await.body["items"][0]["ordered_at"].clone();
    assert_eq!(newest, "2026-03-01T06:00:00.000Z");
    let cardio = t.get("/api/v1/referrals?specialty=cardiology").await.body["items"].as_array().unwrap().len();
    assert_eq!(cardio, 4);
    let dr_a = t.get("/api/v1/referrals?provider=dr-a").await.body["items"].as_array().unwrap().len();
    assert_eq!(dr_a, 3);
    let ordered = t.get("/api/v1/referrals?state=ordered").await.body["items"].as_array().unwrap().len();
    assert_eq!(ordered, 7);
    assert_eq!(t.get("/api/v1/referrals?state=lost").await.status, 422);
    assert_eq!(t.get("/api/v1/referrals?cursor=garbage").await.status, 422);
    assert_eq!(t.get("/api/v1/referrals?limit=0").await.status, 422);
}

async fn overdue_lists_referrals_past_their_stage_window(b: Backend) {
    let t = TestApp::spawn(b).await;
    let body = |p: &str| {
        json!({"patient_id": p, "referring_provider": "dr-a", "specialty": "cardiology",
        "patient": {"phone": "+15555550100", "sms_consent": true}})
    };
    let late = t.create_referral_id(body("p-late")).await;
    let booked = t.create_referral_id(body("p-booked")).await;
    t.event(&booked, json!({"type": "scheduled", "appointment_at": "2026-03-20T14:00:00.000Z"})).await;
    t.advance("8d").await;
    let overdue: Vec<String> = t.get("/api/v1/referrals?overdue=true").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(overdue, vec![late.clone()]);
    assert_eq!(t.referral(&late).await["overdue"], true);
    assert_eq!(t.referral(&booked).await["overdue"], false);
}

on_both_backends!(the_list_filters_and_pages_without_gaps_or_repeats, overdue_lists_referrals_past_their_stage_window);
