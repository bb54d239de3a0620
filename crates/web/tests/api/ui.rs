//! The web UI over real HTTP: sign-in, sessions, CSRF, roles, and what the pages show.
//! (The headless-Chromium walk-through is in `tests/browser.rs`.)

use std::collections::BTreeMap;

use refloop_app::Role;
use refloop_testkit::{Backend, TestApp};
use serde_json::json;

on_both_backends!(
    sign_in_needs_the_right_password_and_a_fresh_form,
    sessions_end_on_sign_out_idle_timeout_and_disable,
    forms_without_the_session_token_change_nothing,
    a_viewer_sees_but_cannot_work_tasks,
    pages_show_the_referral_and_its_work,
    the_dashboard_warns_while_a_needed_channel_is_off,
    staff_keep_the_specialist_directory,
    the_worklist_claims_and_reassigns_in_bulk,
    a_form_that_needs_fixing_comes_back_filled_in,
    sign_in_goes_back_only_to_a_page_of_this_site,
    admins_see_who_looked_at_a_patient_and_search_the_audit_log,
    an_admin_enrols_a_second_factor_and_signs_in_with_it,
    staff_sign_in_through_the_practices_openid_provider,
    admins_revoke_tokens_and_end_sessions_from_the_access_page,
    the_dashboard_sets_the_period_beside_its_baseline,
    the_cms50_page_says_why_a_zero_is_zero,
);

/// The CMS50 page: the practice and each provider, the patients behind the figures, and
/// when the figures are zero, why (here: the EHR sent no FHIR data); its reads are audited.
async fn the_cms50_page_says_why_a_zero_is_zero(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.create_referral_id(json!({"patient_id": "p-hl7", "referring_provider": "dr-a", "specialty": "cardiology"})).await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    assert!(p.get("/").await.html.contains(r#"href="/reports/cms50""#), "linked from the dashboard");
    let page = p.get("/reports/cms50?year=2026").await;
    assert_eq!(page.status, 200);
    let why = page.html.split(r#"id="why-zero""#).nth(1).expect("a reason for the zeros");
    assert!(why.contains("no FHIR data received"), "{why}");
    assert!(page.html.contains("<strong>Practice</strong>"));
    assert_eq!(p.get("/reports/cms50?year=next").await.status, 422);
    let audit = t.app.store().audit_log(20).await.unwrap();
    assert!(audit.iter().any(|a| a.resource_id == "cms50:2026" && a.actor == "coordinator:casey"));
}

/// With a baseline period the dashboard shows each figure now, then and the change in points
/// (or days).
async fn the_dashboard_sets_the_period_beside_its_baseline(b: Backend) {
    let t = with_user(b, Role::Viewer).await;
    let old = t
        .create_referral_id(json!({"patient_id": "p-jan", "referring_provider": "dr-a", "specialty": "cardiology",
            "ordered_at": "2026-01-05T15:00:00Z"}))
        .await;
    for (kind, at) in [
        ("patient-notified", "2026-01-06"),
        ("scheduled", "2026-01-07"),
        ("attended", "2026-01-20"),
        ("note-received", "2026-01-25"),
    ] {
        let mut body = json!({"type": kind, "at": format!("{at}T15:00:00Z")});
        if kind == "scheduled" {
            body["appointment_at"] = json!("2026-01-20T15:00:00Z");
        }
        t.event(&old, body).await;
    }
    t.create_referral_id(json!({"patient_id": "p-mar", "referring_provider": "dr-a", "specialty": "cardiology"})).await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let dash = p.get("/?from=2026-03-01&to=2026-03-31&baseline_from=2026-01-01&baseline_to=2026-01-31").await;
    assert_eq!(dash.status, 200);
    let card =
        dash.html.split(r#"id="against-baseline""#).nth(1).expect("the comparison").split("</table>").next().unwrap();
    let row = |what: &str| card.split("<tr>").find(|r| r.contains(what)).unwrap_or_default().to_owned();
    let all = row("Closed-loop rate, all referrals");
    assert!(all.contains("0.0%") && all.contains("100.0%") && all.contains("-100.0 pts"), "{all}");
    assert!(row("Median days order → note").contains("20.0"), "{card}");
    let plain = p.get("/?from=2026-03-01&to=2026-03-31").await;
    assert!(!plain.html.contains("against-baseline"), "no baseline, no comparison");
}

/// A cookie-keeping client that does not follow redirects.
struct Person {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: String,
    html: String,
}

impl Person {
    fn new(t: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Person { http, base: t.base.clone(), cookies: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn page(&mut self, resp: reqwest::Response) -> Page {
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            // Strict, but the one that must ride the identity provider's redirect back.
            let same_site = if c.starts_with("refloop_sso=") { "SameSite=Lax" } else { "SameSite=Strict" };
            assert!(c.contains("HttpOnly") && c.contains(same_site) && c.contains("Secure"), "{c}");
            let (kv, _) = c.split_once(';').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        Page { status, location, html: resp.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp =
            self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.page(resp).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = csrf_of(&form.html);
        self.post("/login", &[("csrf", &csrf), ("next", "/worklist"), ("username", user), ("password", password)]).await
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn with_user(b: Backend, role: Role) -> TestApp {
    let t = TestApp::spawn(b).await;
    t.app.save_user("casey", role, "correct horse battery").await.unwrap();
    t
}

async fn sign_in_needs_the_right_password_and_a_fresh_form(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let mut p = Person::new(&t);
    let first = p.get("/worklist").await;
    assert_eq!((first.status, first.location.as_str()), (303, "/login?next=/worklist"));

    let wrong = p.sign_in("casey", "wrong password!").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.html.contains("Wrong username or password."));
    assert!(!wrong.html.contains("wrong password!"), "the password is never echoed");
    let nobody = p.sign_in("nobody", "correct horse battery").await;
    assert_eq!(nobody.status, 401, "the same answer for an unknown name");

    // A sign-in post without the form's token (e.g. from another site) is refused.
    let forged =
        p.post("/login", &[("csrf", "forged"), ("username", "casey"), ("password", "correct horse battery")]).await;
    assert_eq!(forged.status, 403);
    assert!(!p.cookies.contains_key("refloop_session"));

    let ok = p.sign_in("casey", "correct horse battery").await;
    assert_eq!((ok.status, ok.location.as_str()), (303, "/worklist"));
    assert!(p.cookies.contains_key("refloop_session"));
    assert_eq!(p.get("/worklist").await.status, 200);

    let audit = t.app.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "login" && a.actor == "coordinator:casey"));
}

async fn sign_in_goes_back_only_to_a_page_of_this_site(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    // As a browser sends them: the form's `next` holds what the sign-in link carried, decoded.
    for next in
        ["/\t/evil.example/phish", "//evil.example", "/\\evil.example", "https:evil.example", "/\n/evil.example"]
    {
        let mut p = Person::new(&t);
        let form = p.get(&format!("/login?next={}", next.replace('\t', "%09").replace('\n', "%0A"))).await;
        assert!(!form.html.contains("evil.example"), "the form does not carry it: {next:?}");
        let csrf = csrf_of(&form.html);
        let signed_in = p
            .post(
                "/login",
                &[("csrf", &csrf), ("next", next), ("username", "casey"), ("password", "correct horse battery")],
            )
            .await;
        assert_eq!((signed_in.status, signed_in.location.as_str()), (303, "/"), "{next:?}");
    }
}

async fn sessions_end_on_sign_out_idle_timeout_and_disable(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let page = p.get("/worklist").await;
    assert_eq!(page.status, 200);

    // Idle for 29 minutes: still signed in; 31 more: gone.
    t.advance("29m").await;
    assert_eq!(p.get("/worklist").await.status, 200);
    t.advance("31m").await;
    assert_eq!(p.get("/worklist").await.status, 303, "idle timeout");

    p.sign_in("casey", "correct horse battery").await;
    let page = p.get("/worklist").await;
    let out = p.post("/logout", &[("csrf", &csrf_of(&page.html))]).await;
    assert_eq!((out.status, out.location.as_str()), (303, "/login"));
    assert_eq!(p.get("/worklist").await.status, 303, "signed out");

    p.sign_in("casey", "correct horse battery").await;
    assert_eq!(p.get("/").await.status, 200);
    t.app.set_user_disabled("casey", true).await.unwrap();
    assert_eq!(p.get("/").await.status, 303, "a disabled user's session ends");
    assert_eq!(p.sign_in("casey", "correct horse battery").await.status, 401);
    // Sign-out, disabling and clock moves are audited.
    let audit = t.app.store().audit_log(100).await.unwrap();
    let did = |action: &str, kind: &str| audit.iter().any(|a| a.action == action && a.resource_type == kind);
    assert!(did("logout", "user") && did("disable", "user") && did("advance", "clock"), "{audit:?}");
    assert!(audit.iter().any(|a| a.action == "logout" && a.actor == "coordinator:casey"), "{audit:?}");
}

async fn forms_without_the_session_token_change_nothing(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p-ui", "referring_provider": "dr-adams", "specialty": "cardiology"}))
        .await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let forged = p.post(&format!("/referrals/{id}/events"), &[("csrf", "nope"), ("type", "attended")]).await;
    assert_eq!(forged.status, 403);
    let missing = p.post(&format!("/referrals/{id}/events"), &[("type", "attended")]).await;
    assert_eq!(missing.status, 403);
    assert_eq!(t.referral(&id).await["state"], "ordered", "nothing changed");

    // With the token and a bad date: a clear error, nothing changed.
    let page = p.get(&format!("/referrals/{id}")).await;
    let csrf = csrf_of(&page.html);
    let bad = p
        .post(&format!("/referrals/{id}/events"), &[("csrf", &csrf), ("type", "scheduled"), ("appointment_at", "soon")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.html.contains("appointment_at"), "{}", bad.html);
    assert_eq!(t.referral(&id).await["state"], "ordered");

    let ok = p
        .post(
            &format!("/referrals/{id}/events"),
            &[("csrf", &csrf), ("type", "scheduled"), ("appointment_at", "2026-03-09T10:00")],
        )
        .await;
    assert_eq!((ok.status, ok.location.as_str()), (303, format!("/referrals/{id}").as_str()));
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "scheduled");
    assert_eq!(r["appointment_at"], "2026-03-09T10:00:00.000Z", "read in the practice's zone (UTC here)");
}

async fn a_viewer_sees_but_cannot_work_tasks(b: Backend) {
    let t = with_user(b, Role::Viewer).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p-view", "referring_provider": "dr-adams", "specialty": "cardiology",
            "patient": {"phone": "+15555550150", "sms_consent": false}}))
        .await;
    t.advance("1d").await;
    let task = t.tasks_of(&id).await.into_iter().next().expect("a notify task");
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let page = p.get("/worklist").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(&id));
    assert!(!page.html.contains(">Claim</button>"), "no buttons for a viewer");
    let tid = task["id"].as_str().unwrap();
    let tried = p.post(&format!("/tasks/{tid}/claim"), &[("csrf", &csrf_of(&page.html))]).await;
    assert_eq!(tried.status, 403);
    assert_eq!(t.tasks_of(&id).await[0]["status"], "open");
}

async fn pages_show_the_referral_and_its_work(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-page", "referring_provider": "dr-baker", "specialty": "dermatology",
            "patient": {"name": "Pat Page", "phone": "+15555550151", "sms_consent": false}}),
        )
        .await;
    t.advance("8d").await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;

    let list = p.get("/referrals?specialty=dermatology&overdue=true").await;
    assert_eq!(list.status, 200);
    assert!(list.html.contains(&format!("/referrals/{id}")) && list.html.contains("overdue"));
    let none = p.get("/referrals?specialty=cardiology").await;
    assert!(!none.html.contains(&id) && none.html.contains("No referrals match these filters."));
    let search = p.get(&format!("/referrals?id={id}")).await;
    assert_eq!(search.location, format!("/referrals/{id}"));
    // The patient as a person: name, a masked phone revealed on request (an audited read).
    assert!(list.html.contains("<strong>Pat Page</strong>") && list.html.contains("•••• 0151"), "{}", list.html);
    assert!(!list.html.contains("+15555550151"), "masked until asked");
    let shown = p.get("/referrals?specialty=dermatology&reveal=p-page").await;
    assert!(shown.html.contains("+15555550151"));
    let audit = t.app.store().audit_log(50).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "reveal-phone" && a.resource_id == "p-page" && a.actor.ends_with("casey"))
    );
    assert!(audit.iter().any(|a| a.action == "list" && a.resource_type == "patient" && a.resource_id == "p-page"));
    let by_name = p.get("/referrals?q=pat+pa").await;
    assert_eq!(by_name.location, format!("/referrals/{id}"), "one match: straight to it");
    let nothing = p.get("/referrals?q=Zebulon").await;
    assert_eq!(nothing.status, 200, "no match is a page that says so, not a 404");
    assert!(nothing.html.contains("No referral matches “Zebulon”"), "{}", nothing.html);

    let detail = p.get(&format!("/referrals/{id}")).await;
    assert!(detail.html.contains("escalated") && detail.html.contains("Call the patient"), "{}", detail.html);

    // Claim, reassign and complete from the worklist.
    let work = p.get("/worklist").await;
    let csrf = csrf_of(&work.html);
    let tid = t.tasks_of(&id).await[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        p.post(&format!("/tasks/{tid}/claim"), &[("csrf", &csrf), ("back", "/worklist")]).await.location,
        "/worklist"
    );
    assert_eq!(t.tasks_of(&id).await[0]["assignee"], "casey");
    // Only to a person who can sign in.
    let nobody = p.post(&format!("/tasks/{tid}/assign"), &[("csrf", &csrf), ("assignee", "sam")]).await;
    assert_eq!(nobody.status, 422, "{}", nobody.html);
    assert_eq!(t.tasks_of(&id).await[0]["assignee"], "casey");
    t.app.save_user("sam", Role::Coordinator, "another long secret").await.unwrap();
    p.post(&format!("/tasks/{tid}/assign"), &[("csrf", &csrf), ("assignee", "sam")]).await;
    assert_eq!(t.tasks_of(&id).await[0]["assignee"], "sam");
    p.post(&format!("/tasks/{tid}/complete"), &[("csrf", &csrf)]).await;
    let done = t.tasks_of(&id).await.into_iter().find(|x| x["id"] == tid.as_str()).unwrap();
    assert_eq!(done["status"], "done");

    let dash = p.get("/?from=2026-03-01&to=2026-03-31&by=provider").await;
    assert_eq!(dash.status, 200);
    assert!(dash.html.contains("<svg") && dash.html.contains("dr-baker"));
    assert!(dash.html.contains(r#"id="closed-loop-rate-all">0.0%"#), "one referral, not closed");
    assert!(dash.html.contains(r#"id="closed-loop-rate">–"#), "none ordered 90 days ago: no mature rate yet");
    // The weekly trend: a row per week of March (by its Monday), the referral in its week,
    // which is not mature yet (and says so, hatched in the chart).
    let week = r#"<td>2026-03-02 <span class="muted">(not mature)</span></td><td class="num">1</td>"#;
    assert!(dash.html.contains(week), "{}", dash.html);
    assert!(dash.html.contains(r#"class="bar provisional""#) && dash.html.contains("not mature yet"));
    let not_mature = r#" <span class="muted">(not mature)</span></td><td class="num">0</td>"#;
    assert!(dash.html.contains(&format!("<td>2026-03-30{not_mature}")));
    assert!(dash.html.contains(&format!("<td>2026-02-23{not_mature}")), "March 1 is a Sunday");
    assert!(dash.html.contains(">Last quarter</a>") && dash.html.contains(">Year to date</a>"), "period presets");
    assert!(dash.html.contains("Data: referrals ordered 2026-03-02 to 2026-03-02"), "what data there is");
    assert_eq!(dash.html.matches(r#"download="funnel.svg" href="data:image/svg+xml"#).count(), 1, "a chart as SVG");
    let leak = dash.html.split(r#"id="leakage""#).nth(1).unwrap().split("</table>").next().unwrap();
    let at: Vec<usize> = ["not notified", "not scheduled", "not attended", "no note"]
        .iter()
        .map(|s| leak.find(&format!("<td>{s}</td>")).expect("every stage, in order"))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "funnel order: {leak}");
    let csv = p.get("/export.csv?from=2026-03-01&to=2026-03-31").await;
    assert!(csv.html.starts_with("referral_id,") && csv.html.contains(&id));
    assert!(!p.get("/settings").await.html.is_empty());
}

async fn the_dashboard_warns_while_a_needed_channel_is_off(b: Backend) {
    // SMS and note requests only log here.
    let t = TestApp::spawn(b).await;
    t.app.save_user("mia", Role::Viewer, "correct horse battery").await.unwrap();
    let mut p = Person::new(&t);
    p.sign_in("mia", "correct horse battery").await;
    let dash = p.get("/").await;
    assert_eq!(dash.status, 200);
    assert!(dash.html.contains(r#"id="channels-off""#), "a banner while SMS is off");
    assert!(dash.html.contains("Patient SMS") && dash.html.contains("Note request (fax / Direct)"));
    let settings = p.get("/settings").await;
    assert!(
        settings.html.contains("<td>Patient SMS</td><td><strong class=\"error\">off</strong></td>"),
        "{}",
        settings.html
    );
    // Live SMS (a fake provider): it shows as live with its last success, and the banner names
    // only what is still off.
    let live = TestApp::builder(b).live().fax(&refloop_testkit::FakeFax::start().await).spawn().await;
    live.app.save_user("mia", Role::Viewer, "correct horse battery").await.unwrap();
    live.create_referral_id(json!({"patient_id": "p-ch", "referring_provider": "dr-a", "specialty": "cardiology",
        "patient": {"phone": "+15555550160", "sms_consent": true}}))
        .await;
    live.advance("1m").await;
    let mut p = Person::new(&live);
    p.sign_in("mia", "correct horse battery").await;
    assert!(!p.get("/").await.html.contains(r#"id="channels-off""#), "SMS and note requests are live");
    let settings = p.get("/settings").await.html;
    assert!(settings.contains("<td>Patient SMS</td><td>live</td><td>Mon 2 Mar 15:00</td><td>never</td>"), "{settings}");
}

async fn staff_keep_the_specialist_directory(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let page = p.get("/directory").await;
    assert!(page.html.contains("The directory is empty"));
    let csrf = csrf_of(&page.html);
    let entry = |fax: &'static str| {
        vec![
            ("name", "Dr Li Chen"),
            ("specialties", "Cardiology"),
            ("network", "out-of-network"),
            ("phone", "+15555550150"),
            ("fax", fax),
            ("direct_address", "li.chen@direct.heart.example"),
            ("booking_url", "https://book.heart.example/chen"),
            ("accepts_360x", "true"),
        ]
    };
    // A bad fax number: the form comes back with what was typed and what to fix.
    let mut bad = entry("555-01");
    bad.push(("csrf", &csrf));
    let refused = p.post("/directory", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.html.contains("Fax: an E.164 number"), "{}", refused.html);
    assert!(refused.html.contains(r#"value="Dr Li Chen""#) && refused.html.contains(r#"value="555-01""#), "input kept");
    assert!(t.get("/api/v1/specialists").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");
    let mut good = entry("+15555550151");
    good.push(("csrf", &csrf));
    assert_eq!(p.post("/directory", &good).await.status, 303);
    let saved = t.get("/api/v1/specialists").await.body["items"][0].clone();
    assert_eq!(
        (
            saved["name"].as_str(),
            saved["specialties"][0].as_str(),
            saved["accepts_360x"].as_bool(),
            saved["booking_url"].as_str()
        ),
        (Some("Dr Li Chen"), Some("cardiology"), Some(true), Some("https://book.heart.example/chen"))
    );
    // Stale after 90 days; "verified today" is one click.
    t.advance("100d").await;
    let id = saved["id"].as_str().unwrap().to_owned();
    assert_eq!(t.get("/api/v1/specialists?stale=true").await.body["items"].as_array().unwrap().len(), 1);
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await; // the session ended long ago
    let page = p.get("/directory").await;
    let csrf = csrf_of(&page.html);
    assert!(page.html.contains("stale"));
    assert_eq!(p.post(&format!("/directory/{id}/verify"), &[("csrf", &csrf)]).await.status, 303);
    assert!(t.get("/api/v1/specialists?stale=true").await.body["items"].as_array().unwrap().is_empty());
    // Edit: the same entry, changed.
    let mut edit = entry("+15555550151");
    edit.retain(|(k, _)| *k != "accepts_360x");
    edit.push(("id", &id));
    edit.push(("csrf", &csrf));
    assert_eq!(p.post("/directory", &edit).await.status, 303);
    let items = t.get("/api/v1/specialists").await.body["items"].as_array().cloned().unwrap();
    assert_eq!((items.len(), items[0]["accepts_360x"].as_bool()), (1, Some(false)));
}

async fn the_worklist_claims_and_reassigns_in_bulk(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.app.save_user("sam", Role::Coordinator, "another long secret").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = t
            .create_referral_id(json!({"patient_id": format!("p-bulk{i}"), "referring_provider": "dr-a",
                "specialty": "cardiology", "patient": {"name": format!("Bulk Patient {i}"), "sms_consent": false}}))
            .await;
        ids.push(t.tasks_of(&id).await[0]["id"].as_str().unwrap().to_owned());
    }
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let page = p.get("/worklist?view=unassigned").await;
    assert!(ids.iter().all(|id| page.html.contains(id.as_str())), "all three unassigned");
    let csrf = csrf_of(&page.html);
    let form =
        [("csrf", csrf.as_str()), ("back", "/worklist"), ("action", "claim"), ("task", &ids[0]), ("task", &ids[1])];
    assert_eq!(p.post("/worklist/bulk", &form).await.status, 303);
    let mine = p.get("/worklist?view=mine").await.html;
    assert!(mine.contains(ids[0].as_str()) && mine.contains(ids[1].as_str()) && !mine.contains(ids[2].as_str()));
    let form =
        [("csrf", csrf.as_str()), ("action", "assign"), ("assignee", "sam"), ("task", &ids[1]), ("task", &ids[2])];
    assert_eq!(p.post("/worklist/bulk", &form).await.status, 303);
    let owners: Vec<String> = t.get("/api/v1/tasks?status=claimed").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}={}", x["id"].as_str().unwrap(), x["assignee"].as_str().unwrap()))
        .collect();
    for (id, who) in [(&ids[0], "casey"), (&ids[1], "sam"), (&ids[2], "sam")] {
        assert!(owners.contains(&format!("{id}={who}")), "{owners:?}");
    }
    let none = p.post("/worklist/bulk", &[("csrf", csrf.as_str()), ("action", "claim")]).await;
    assert_eq!(none.status, 422, "nothing ticked");
    let ghost = [("csrf", csrf.as_str()), ("action", "assign"), ("assignee", "ghost"), ("task", &ids[0])];
    assert_eq!(p.post("/worklist/bulk", &ghost).await.status, 422, "only to a person who can sign in");
}

async fn a_form_that_needs_fixing_comes_back_filled_in(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    t.app.save_user("casey", Role::Coordinator, "correct horse battery").await.unwrap();
    let id = t
        .create_referral_id(json!({"patient_id": "p-typed", "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"name": "Typed Patient", "phone": "+15555550170", "sms_consent": false}}))
        .await;
    let task = t.tasks_of(&id).await[0]["id"].as_str().unwrap().to_owned();
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/worklist?view=open").await.html);
    // "Reached and scheduled" without the date: the worklist again, the form open and filled in.
    let form = [
        ("csrf", csrf.as_str()),
        ("back", "/worklist?view=open"),
        ("outcome", "scheduled"),
        ("note", "wants mornings"),
    ];
    let page = p.post(&format!("/tasks/{task}/complete"), &form).await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("Not saved: appointment_at: enter the appointment"), "{}", page.html);
    assert!(page.html.contains(r#"value="wants mornings""#), "the note kept");
    assert!(page.html.contains(&format!(r#"id="task-{task}" open"#)), "its form open");
    assert!(page.html.contains(r#"<option value="scheduled" selected>"#));
    assert_eq!(t.tasks_of(&id).await[0]["status"], "open", "nothing saved");
    // From the referral page: a text for a patient without consent comes back with what to fix.
    let page = p.post(&format!("/referrals/{id}/sms"), &[("csrf", csrf.as_str()), ("text", "Please call us")]).await;
    assert_eq!(page.status, 409);
    assert!(page.html.contains("Not sent: the patient has not agreed to texts"), "{}", page.html);
    assert!(page.html.contains(">Please call us</textarea>"), "the text kept");
    assert!(t.twilio.as_ref().unwrap().sent().is_empty());
    // Closing without a reason: the form again, what was chosen kept.
    let close = [("csrf", csrf.as_str()), ("type", "closed-incomplete"), ("at", "2026-03-02T09:30")];
    let page = p.post(&format!("/referrals/{id}/events"), &close).await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("Not recorded: reason: a reason is required"), "{}", page.html);
    assert!(
        page.html.contains(r#"<option value="closed-incomplete" selected>"#)
            && page.html.contains(r#"value="2026-03-02T09:30""#)
    );
    assert_eq!(t.referral(&id).await["state"], "ordered");
}

/// An admin sees on the referral page who looked at the patient (a coordinator's list and
/// read, with the address), and searches the audit log by user, patient, action and period;
/// a coordinator sees neither. The searches are audited too.
async fn admins_see_who_looked_at_a_patient_and_search_the_audit_log(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-look", "referring_provider": "dr-baker", "specialty": "dermatology"}),
        )
        .await;
    let mut casey = Person::new(&t);
    casey.sign_in("casey", "correct horse battery").await;
    assert_eq!(casey.get(&format!("/referrals/{id}")).await.status, 200);
    let page = casey.get(&format!("/referrals/{id}")).await;
    assert!(!page.html.contains("Who looked at this patient"), "admins only");
    assert_eq!(casey.get("/admin/audit").await.status, 403);

    let mut avery = Person::new(&t);
    avery.sign_in("avery", "correct horse battery").await;
    let page = avery.get(&format!("/referrals/{id}")).await;
    assert_eq!(page.status, 200);
    let section = page.html.split("Who looked at this patient").nth(1).expect("the section, for an admin");
    assert!(section.contains("coordinator:casey") && section.contains("127.0.0.1"), "{section}");
    assert!(section.contains("admin:avery"), "this page's own read is listed");
    assert!(section.contains("/admin/audit?patient=p-look"));

    let found = avery.get("/admin/audit?user=casey&action=read").await;
    assert_eq!(found.status, 200);
    let rows = found.html.split("<tbody>").nth(1).unwrap();
    assert!(rows.contains(&id) && rows.contains("coordinator:casey") && !rows.contains("admin:avery"), "{rows}");
    let by_patient = avery.get("/admin/audit?patient=p-look&action=create").await;
    assert!(by_patient.html.split("<tbody>").nth(1).unwrap().contains(&id), "the referral made for the patient");
    let none = avery.get("/admin/audit?user=casey&to=2001-01-01").await;
    assert!(none.html.contains("No audit rows match."));
    let bad = avery.get("/admin/audit?from=yesterday").await;
    assert_eq!(bad.status, 422);
    let audit = t.app.store().audit_log(100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "search" && a.resource_type == "audit" && a.actor == "admin:avery"));
}

/// The TOTP code for `secret` (base32, as the page shows it) `ahead` steps from now, as an
/// authenticator app shows it.
fn totp_code(secret: &str, ahead: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.replace(' ', "")).to_bytes().unwrap();
    let t = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into()).unwrap();
    let now = refloop_app::Clock::now(&refloop_app::SystemClock).as_second() as u64;
    t.generate(now + 30 * ahead)
}

/// An admin (whose role needs a second factor) can reach nothing until they enrol; a wrong
/// code is refused and the same key shown again; the right one shows ten recovery codes once.
/// Sign-in then asks for a code after the password: a code is taken once (a replay is
/// refused), a recovery code works once, wrong codes count towards the lockout, and each step
/// is audited.
async fn an_admin_enrols_a_second_factor_and_signs_in_with_it(b: Backend) {
    let t = TestApp::builder(b).admin_mfa().spawn().await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let mut p = Person::new(&t);
    let first = p.sign_in("avery", "correct horse battery").await;
    assert_eq!((first.status, first.location.as_str()), (303, "/account/mfa"));
    assert_eq!(p.get("/worklist").await.location, "/account/mfa", "nothing else until enrolled");
    let enrol = p.get("/account/mfa").await;
    assert_eq!(enrol.status, 200);
    let at = enrol.html.find("id=\"totp-secret\">").unwrap() + 17;
    let secret = enrol.html[at..].split('<').next().unwrap().to_owned();
    assert!(enrol.html.contains("otpauth://totp/refloop:avery?"), "the link an app reads");
    let csrf = csrf_of(&enrol.html);

    let wrong = p.post("/account/mfa", &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.html.contains(&secret), "the same key, so the app already set up still matches");
    let done = p.post("/account/mfa", &[("csrf", &csrf), ("code", &totp_code(&secret, 0))]).await;
    assert_eq!(done.status, 200, "{}", done.html);
    let codes: Vec<String> =
        done.html.split("<li><code>").skip(1).map(|c| c.split('<').next().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10, "{}", done.html);
    assert_eq!(p.get("/worklist").await.status, 200, "the new session cookie is a full one");
    assert!(!p.get("/account/mfa").await.html.contains(&codes[0]), "recovery codes are shown once");

    // Next sign-in: the password, then a code.
    let mut p = Person::new(&t);
    let pw = p.sign_in("avery", "correct horse battery").await;
    assert_eq!((pw.status, pw.location.as_str()), (303, "/login/mfa?next=/worklist"));
    assert_eq!(p.get("/worklist").await.location, "/login/mfa?next=/worklist");
    let half = p.cookies.get("refloop_session").cloned().unwrap();
    let form = p.get("/login/mfa?next=/worklist").await;
    let csrf = csrf_of(&form.html);
    let next_code = totp_code(&secret, 1);
    let ok = p.post("/login/mfa", &[("csrf", &csrf), ("next", "/worklist"), ("code", &next_code)]).await;
    assert_eq!((ok.status, ok.location.as_str()), (303, "/worklist"));
    assert_ne!(p.cookies.get("refloop_session"), Some(&half), "a new session after the second factor");
    assert_eq!(p.get("/worklist").await.status, 200);

    // The same code again (seen over a shoulder) is refused; a recovery code works once.
    let mut p = Person::new(&t);
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    let replay = p.post("/login/mfa", &[("csrf", &csrf), ("code", &next_code)]).await;
    assert_eq!(replay.status, 401);
    let typed = codes[3].to_uppercase().replace('-', " ");
    let by_code = p.post("/login/mfa", &[("csrf", &csrf), ("next", "/"), ("code", &typed)]).await;
    assert_eq!((by_code.status, by_code.location.as_str()), (303, "/"));
    let mut p = Person::new(&t);
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", &codes[3])]).await.status, 401, "used once");

    let audit = t.app.store().audit_log(100).await.unwrap();
    for action in ["mfa-enrol-failed", "mfa-enrol", "login-password", "mfa-use", "mfa-failed", "mfa-recovery-code-use"]
    {
        assert!(audit.iter().any(|a| a.action == action && a.resource_id == "avery"), "{action} is audited");
    }
    // Wrong codes lock the account like wrong passwords (one so far, five lock), and a right
    // password in between does not reset the count.
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    for _ in 0..4 {
        assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", "123456")]).await.status, 401);
    }
    let user = t.app.store().user("avery").await.unwrap().unwrap();
    assert!(user.locked_until.is_some(), "locked after five failures in a row");
    let code = totp_code(&secret, 0);
    assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", &code)]).await.status, 401, "even a right code");

    // A lost phone: the operator resets it, and the admin enrols again at the next sign-in.
    t.app.unlock_user("avery", &refloop_app::Actor::system("cli")).await.unwrap();
    t.app.mfa_reset("avery", &refloop_app::Actor::system("cli")).await.unwrap();
    let mut p = Person::new(&t);
    assert_eq!(p.sign_in("avery", "correct horse battery").await.location, "/account/mfa");
}

/// A browser at the identity provider: follows its redirects, keeps its cookies, and fills
/// its sign-in and consent forms, until the provider sends it back to us (the URL returned).
async fn at_the_provider(start: &str, login: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let origin = start.split('/').take(3).collect::<Vec<_>>().join("/");
    let mut next = (start.to_owned(), None::<Vec<(String, String)>>);
    for _ in 0..12 {
        let (url, form) = next.clone();
        let jar = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = match &form {
            Some(f) => http.post(&url).form(f),
            None => http.get(&url),
        };
        let resp = req.header("cookie", jar).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let (kv, _) = c.to_str().unwrap().split_once(';').unwrap_or((c.to_str().unwrap(), ""));
            let (k, v) = kv.split_once('=').unwrap();
            cookies.insert(k.to_owned(), v.to_owned());
        }
        if let Some(to) = resp.headers().get("location") {
            let to = to.to_str().unwrap();
            let to = if to.starts_with('/') { format!("{origin}{to}") } else { to.to_owned() };
            if !to.starts_with(&origin) {
                return to;
            }
            next = (to, None);
            continue;
        }
        let html = resp.text().await.unwrap();
        let action = html.split("action=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form").to_owned();
        let prompt =
            html.split("name=\"prompt\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
        let mut fields = vec![("prompt".to_owned(), prompt.clone())];
        if prompt == "login" {
            fields.push(("login".into(), login.into()));
            fields.push(("password".into(), "whatever the provider checks".into()));
        }
        next = (action, Some(fields));
    }
    panic!("the provider never sent the browser back");
}

/// Single sign-on against a real OpenID provider (npm `oidc-provider`) on loopback: the
/// sign-in page offers it; a member of the admins' group comes back signed in as an admin
/// and one of the care team as a coordinator (their roles from the `groups` claim, the
/// broadest winning); an account with no mapped group is refused; a callback replayed, or
/// begun in another browser, or naming a local account's name, opens nothing; each
/// sign-in is audited.
async fn staff_sign_in_through_the_practices_openid_provider(b: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/login/sso/callback", listener.local_addr().unwrap());
    let op = refloop_testkit::OidcProvider::start("refloop-test", "a client secret for tests", &callback);
    let builder = TestApp::builder(b);
    let oidc = refloop_web::Oidc::new(refloop_web::OidcSettings {
        issuer: op.issuer.clone(),
        client_id: "refloop-test".into(),
        client_secret: "a client secret for tests".into(),
        redirect_url: callback.clone(),
        username_claim: "preferred_username".into(),
        role_claim: "groups".into(),
        roles: vec![
            ("refloop-admins".into(), Role::Admin),
            ("care-team".into(), Role::Coordinator),
            ("staff".into(), Role::Viewer),
        ],
        label: "Sign in with North Clinic".into(),
    });
    let t = builder.sso(listener, oidc).spawn().await;
    t.app.save_user("casey", Role::Coordinator, "correct horse battery").await.unwrap();

    let mut p = Person::new(&t);
    let form = p.get("/login?next=/worklist").await;
    assert!(form.html.contains("Sign in with North Clinic") && form.html.contains("/login/sso?next="), "{}", form.html);
    let out = p.get("/login/sso?next=/worklist").await;
    assert_eq!(out.status, 303);
    assert!(
        out.location.starts_with(&format!("{}/auth?", op.issuer))
            && out.location.contains("code_challenge_method=S256")
    );
    let back = at_the_provider(&out.location, "ana").await;
    assert!(back.starts_with(&callback), "{back}");
    let path = back.trim_start_matches(&t.base).to_owned();
    let signed = p.get(&path).await;
    assert_eq!(signed.status, 200, "{}", signed.html);
    assert!(signed.html.contains("url=/worklist"), "moves on to where the person was going");
    assert_eq!(p.get("/worklist").await.status, 200);
    assert_eq!(p.get("/admin/audit").await.status, 200, "ana is an admin (group refloop-admins)");

    // The same callback again (a replay) opens nothing.
    let mut replay = Person::new(&t);
    replay.cookies = p.cookies.clone();
    replay.cookies.remove("refloop_session");
    assert_eq!(replay.get(&path).await.status, 403);

    // Cole is care team and staff: a coordinator.
    let mut c = Person::new(&t);
    let out = c.get("/login/sso?next=/").await;
    let back = at_the_provider(&out.location, "cole").await;
    assert_eq!(c.get(back.trim_start_matches(&t.base)).await.status, 200);
    assert_eq!(c.get("/admin/audit").await.status, 403);
    assert_eq!(t.app.store().user("cole").await.unwrap().unwrap().role, Role::Coordinator);

    // A callback begun in another browser (no matching cookie) is refused.
    let mut other = Person::new(&t);
    let out = other.get("/login/sso").await;
    let back = at_the_provider(&out.location, "cole").await;
    let mut stranger = Person::new(&t);
    assert_eq!(stranger.get(back.trim_start_matches(&t.base)).await.status, 403);

    // An account the provider knows but with no mapped group; a local account's name.
    for who in ["zed", "casey"] {
        let mut z = Person::new(&t);
        let out = z.get("/login/sso").await;
        let back = at_the_provider(&out.location, who).await;
        let page = z.get(back.trim_start_matches(&t.base)).await;
        assert_eq!(page.status, 403, "{who}");
        assert!(!z.cookies.contains_key("refloop_session"), "{who}");
    }
    assert!(!t.app.store().user("casey").await.unwrap().unwrap().sso, "the local account stays local");
    let audit = t.app.store().audit_log(100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "login-sso" && a.actor == "admin:ana"));
    for who in ["zed", "casey"] {
        assert!(audit.iter().any(|a| a.action == "login-sso-refused" && a.resource_id == who), "{who}");
    }
    assert!(t.app.store().user("zed").await.unwrap().is_none(), "no account for someone without a role");
    // A single sign-on account has no password here.
    let mut pw = Person::new(&t);
    assert_eq!(pw.sign_in("ana", "!sso").await.status, 401);
}

/// The access page lists tokens and people (with their live sessions, how they sign in and
/// whether they are locked out) to admins only; an admin revokes a token (refused at once),
/// ends a person's sessions (signed out at once) and unlocks an account; each is audited.
async fn admins_revoke_tokens_and_end_sessions_from_the_access_page(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let ehr = t.token(Role::Integration).await;
    let mut casey = Person::new(&t);
    casey.sign_in("casey", "correct horse battery").await;
    assert_eq!(casey.get("/admin/access").await.status, 403);
    let mut avery = Person::new(&t);
    avery.sign_in("avery", "correct horse battery").await;
    let page = avery.get("/admin/access").await;
    assert_eq!(page.status, 200);
    let people = page.html.split("id=\"people\"").nth(1).unwrap().split("</table>").next().unwrap();
    let casey_row = people.split("<tr>").find(|r| r.contains("<td>casey</td>")).unwrap();
    assert!(casey_row.contains("<td>password</td>") && casey_row.contains("<td class=\"num\">1</td>"), "{casey_row}");
    let tokens = page.html.split("id=\"tokens\"").nth(1).unwrap();
    let id = tokens
        .split("<tr><td class=\"id\">")
        .find(|r| r.contains("test-integration"))
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let csrf = csrf_of(&page.html);

    let forged = avery.post(&format!("/admin/access/tokens/{id}/revoke"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(t.get_as(&ehr, "/fhir/metadata").await.status, 200, "still live");
    let revoked = avery.post(&format!("/admin/access/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!((revoked.status, revoked.location.as_str()), (303, "/admin/access?done=revoked"));
    let refused = t.post_as(&ehr, "/api/v1/referrals", json!({"patient_id": "x", "referring_provider": "dr-a"})).await;
    assert_eq!(refused.status, 401, "a revoked token is refused at once");

    let ended = avery.post("/admin/access/users/casey/end-sessions", &[("csrf", &csrf)]).await;
    assert_eq!(ended.location, "/admin/access?done=ended");
    assert_eq!(casey.get("/worklist").await.status, 303, "casey is signed out");
    for _ in 0..5 {
        casey.sign_in("casey", "a wrong password!").await;
    }
    let page = avery.get("/admin/access").await;
    assert!(page.html.contains("<td>casey</td><td>coordinator</td><td>locked</td>"), "locked after five failures");
    avery.post("/admin/access/users/casey/unlock", &[("csrf", &csrf)]).await;
    assert_eq!(casey.sign_in("casey", "correct horse battery").await.status, 303);

    let audit = t.app.store().audit_log(100).await.unwrap();
    for (action, id) in
        [("revoke", id.as_str()), ("end-sessions", "casey"), ("unlock", "casey"), ("view", "tokens,users")]
    {
        assert!(
            audit.iter().any(|a| a.action == action && a.resource_id == id && a.actor == "admin:avery"),
            "{action}"
        );
    }
}
