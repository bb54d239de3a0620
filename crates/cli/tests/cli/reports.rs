//! One definition of a report's period across the dashboard, the API and the CLI: local
//! dates in the practice's time zone, both ends included.

use refloop_testkit::{Backend, TestDb};
use serde_json::json;

use crate::process::{Serve, add_user, prepared, run};

/// Referrals at 23:30 and 00:30 local time either side of both edges of 2026-04-03 (New
/// York, UTC−4 then): the period 04-03..04-03 holds exactly the two of that day, and 04-02..
/// 04-03 three, whether asked of the CLI, the API or the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_api_and_dashboard_count_the_same_referrals_on_a_boundary_day() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = prepared(&db.url);
    let (ok, _, err) = add_user(&db.url, "mara", "viewer", "a long enough secret");
    assert!(ok, "{err}");
    let env = [("REFLOOP_PRACTICE_TIME_ZONE", "America/New_York"), ("REFLOOP_CLOCK_START", "2026-05-01T12:00:00Z")];
    let s = Serve::start(&db.url, &env, &[]);
    let local = [
        "2026-04-02T23:30:00-04:00",
        "2026-04-03T00:30:00-04:00",
        "2026-04-03T23:30:00-04:00",
        "2026-04-04T00:30:00-04:00",
    ];
    for (i, at) in local.iter().enumerate() {
        let body = json!({"patient_id": format!("p{i}"), "referring_provider": "dr-a", "specialty": "cardiology", "ordered_at": at});
        let (status, made) = s.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
        assert_eq!(status, 201, "{made}");
    }
    let (_, session) = s.session("mara", "a long enough secret").await;
    let session = session.expect("signed in");
    for ((from, to), want) in
        [(("2026-04-03", "2026-04-03"), 2), (("2026-04-02", "2026-04-03"), 3), (("2026-04-04", "2026-04-04"), 1)]
    {
        let (status, api) = s.call(&admin, "GET", &format!("/api/v1/reports/closure?from={from}&to={to}"), None).await;
        assert_eq!(status, 200, "{api}");
        let (status, page) = s.page(&session, &format!("/?from={from}&to={to}")).await;
        assert_eq!(status, 200);
        // The all-referrals figure: "closed of referrals; …".
        let all = page.split(r#"id="closed-loop-rate-all">"#).nth(1).and_then(|r| r.split("</b>").nth(1));
        let shown = all.and_then(|r| r.split(" of ").nth(1)).and_then(|r| r.split(';').next());
        let (ok, out, err) =
            run(&["report", "closure", "--json", "--from", from, "--to", to, "--database", &db.url], &env);
        assert!(ok, "{err}");
        let cli: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (api["referrals"].as_u64(), shown.and_then(|n| n.trim().parse::<u64>().ok()), cli["referrals"].as_u64()),
            (Some(want), Some(want), Some(want)),
            "{from}..{to}"
        );
        assert!(page.contains(&format!("Referrals ordered {from} to {to} (both days included")), "the page says so");
    }
    // The export of that day names the local date beside the instant, and the file its period.
    let (ok, out, err) = run(
        &[
            "export",
            "referrals",
            "--format",
            "json",
            "--from",
            "2026-04-03",
            "--to",
            "2026-04-03",
            "--database",
            &db.url,
        ],
        &env,
    );
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let days: Vec<&str> = rows.iter().map(|r| r["ordered_date_local"].as_str().unwrap()).collect();
    assert_eq!(days, ["2026-04-03", "2026-04-03"]);
    let resp = reqwest::Client::new()
        .get(format!("{}/export.csv?from=2026-04-03&to=2026-04-03", s.base))
        .header("cookie", format!("refloop_session={session}"))
        .send()
        .await
        .unwrap();
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert_eq!(disposition, "attachment; filename=\"referrals-2026-04-03-2026-04-03.csv\"");
    assert_eq!(resp.text().await.unwrap().lines().count(), 3, "a header and the day's two referrals");
    s.stop();
}
