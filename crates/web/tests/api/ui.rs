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
    the_dashboard_sets_the_period_beside_its_baseline,
    the_cms50_page_says_why_a_zero_is_zero,
    a_call_to_a_patient_without_texts_in_their_language_needs_an_interpreter,
);

/// The patient's language on the worklist and the referral; a call to a patient whose language
/// has no texts says "needs an interpreter: LANGUAGE"; staff set the language on the referral.
async fn a_call_to_a_patient_without_texts_in_their_language_needs_an_interpreter(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p-vie", "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"name": "Lan Tran", "language": "vie", "sms_consent": false}}))
        .await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let work = p.get("/worklist").await;
    let row = work.html.split(&format!("href=\"/referrals/{id}\"")).nth(1).expect("the call on the worklist");
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("Vietnamese") && row.contains("needs an interpreter: Vietnamese"), "{row}");
    let detail = p.get(&format!("/referrals/{id}")).await;
    assert!(detail.html.contains("needs an interpreter: Vietnamese"), "on the referral too");

    // A language the practice has texts in: no interpreter; a made-up one is kept as written.
    let csrf = csrf_of(&detail.html);
    let set = p.post(&format!("/referrals/{id}/language"), &[("csrf", &csrf), ("language", "Spanish")]).await;
    assert_eq!(set.status, 303);
    let patient = t.app.store().patient(&refloop_domain::PatientId::parse("p-vie").unwrap()).await.unwrap().unwrap();
    assert_eq!(patient.language.as_deref(), Some("es"), "kept as its ISO 639-1 code");
    let work = p.get("/worklist").await;
    let row = work.html.split(&format!("href=\"/referrals/{id}\"")).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("Spanish") && !row.contains("interpreter"), "{row}");
    let refused = p.post(&format!("/referrals/{id}/language"), &[("csrf", &csrf), ("language", "  ")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.html.contains("Not changed"), "{}", refused.html);
    let audit = t.app.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "update" && a.resource_id == "p-vie" && a.actor.ends_with("casey")));
}

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

/// A cookie-keeping client that does not follow redirects (the admin pages' tests use it
/// too).
pub(super) struct Person {
    http: reqwest::Client,
    base: String,
    pub(super) cookies: BTreeMap<String, String>,
}

pub(super) struct Page {
    pub(super) status: u16,
    pub(super) location: String,
    pub(super) html: String,
}

impl Person {
    pub(super) fn new(t: &TestApp) -> Self {
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

    pub(super) async fn get(&mut self, path: &str) -> Page {
        let resp =
            self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.page(resp).await
    }

    pub(super) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
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

    pub(super) async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = csrf_of(&form.html);
        self.post("/login", &[("csrf", &csrf), ("next", "/worklist"), ("username", user), ("password", password)]).await
    }
}

pub(super) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

pub(super) async fn with_user(b: Backend, role: Role) -> TestApp {
    with_user_on(TestApp::builder(b), role).await
}

/// The app `builder` makes, with the user "casey" in `role`.
pub(super) async fn with_user_on(builder: refloop_testkit::TestAppBuilder, role: Role) -> TestApp {
    let t = builder.spawn().await;
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
    // The calendar: the hours, the next closed days from the app's today (2 March 2026), and
    // how the windows read.
    let h = &settings.html;
    assert!(h.contains("Open Mon–Fri 08:00–17:00 (UTC)."), "{h}");
    assert!(h.contains(r#"<li><time datetime="2026-05-25">2026-05-25</time> Memorial Day</li>"#), "{h}");
    assert!(h.contains("<td>routine</td><td>24 hours</td><td>7 calendar days</td>"), "{h}");
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
