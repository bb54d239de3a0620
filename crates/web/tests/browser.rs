//! A coordinator's shift in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/test`) driven over WebDriver. Signs in, filters the
//! worklist, claims the next task and sees the patient's name and phone, records "reached and
//! scheduled", records "no answer" on another call, fixes a phone number (one new SMS at a fake
//! Twilio-compatible server on loopback), and settles a review item by applying it to a
//! referral. Every page is checked with axe-core (from the npm registry, injected into the
//! page: no "serious" or "critical" violation) and kept as screenshots at 1366×900 and
//! 820×1180 under `target/tmp/screenshots/`, where no card or table may be cut off.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use refloop_app::{Arrival, Role, Via};
use refloop_testkit::{Backend, FAX_WEBHOOK_SECRET, TestApp, cda_example, direct_letter, fax_pdf, post_signed};
use serde_json::json;

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let bin = std::env::var("TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} must be installed (scripts/test installs chromium-driver): {e}"));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    // Ready when its status endpoint answers; give up after 30 s.
    for _ in 0..300 {
        if http.get(format!("{}/status", driver.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// axe-core's script (`scripts/test` installs it from the npm registry).
fn axe_source() -> String {
    let path = std::env::var("TEST_AXE").unwrap_or_else(|_| "target/axe/node_modules/axe-core/axe.min.js".into());
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: axe-core must be installed (scripts/test does): {e}"))
}

/// A page as a person sees it: no serious or critical accessibility violation, no sideways
/// scrolling and no card or table cut off at 1366 and 820 px, and a screenshot at each size.
struct Pages {
    c: Client,
    axe: String,
    dir: PathBuf,
    taken: Vec<String>,
}

impl Pages {
    async fn check(&mut self, name: &str) {
        self.c.execute(&self.axe, vec![]).await.expect("axe-core loads");
        let found = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe runs");
        let violations: Vec<String> = serde_json::from_value(found).unwrap();
        assert!(violations.is_empty(), "{name}: {violations:#?}");
        for (w, h) in [(1366u32, 900u32), (820, 1180)] {
            self.c.set_window_size(w, h).await.unwrap();
            let wide = self
                .c
                .execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![])
                .await
                .unwrap();
            // No hidden columns: every card, and every table's box, fits its content.
            let clipped = self
                .c
                .execute(
                    "return [...document.querySelectorAll('section.card'), ...[...document.querySelectorAll('table')].map(t => t.parentElement)]
                       .filter(e => e.scrollWidth > e.clientWidth + 1)
                       .map(e => (e.querySelector('h2') || e).textContent.slice(0, 40).trim() + ' ' + e.scrollWidth + '>' + e.clientWidth);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(clipped, json!([]), "{name}: cards or tables wider than their box at {w} px");
            // No chart text cut off at the picture's edge (an axis label, a bar's name).
            let cut = self
                .c
                .execute(
                    "return [...document.querySelectorAll('svg text')].filter(t => { const b = t.getBBox(), v = t.ownerSVGElement.viewBox.baseVal;
                       return v && v.width > 0 && (b.x < v.x - 0.5 || b.x + b.width > v.x + v.width + 0.5); }).map(t => t.textContent);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(cut, json!([]), "{name}: chart text cut off at {w} px");
            assert!(wide.as_i64().unwrap_or(0) <= 1, "{name} scrolls sideways at {w} px by {wide}");
            let file = format!("{name}-{w}x{h}.png");
            std::fs::write(self.dir.join(&file), self.c.screenshot().await.unwrap()).unwrap();
            self.taken.push(file);
        }
        self.c.set_window_size(1366, 900).await.unwrap();
    }

    async fn go(&mut self, base: &str, path: &str, name: &str) {
        self.c.goto(&format!("{base}{path}")).await.unwrap();
        self.c.wait().for_element(Locator::Css("main h1")).await.unwrap();
        self.check(name).await;
    }
}

/// Sets a form field by script (select, datetime-local) and submits the form of `button`.
async fn fill_and_submit(c: &Client, form: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        c.execute(
            "const f = document.querySelector(arguments[0]); f.elements[arguments[1]].value = arguments[2];",
            vec![json!(form), json!(name), json!(value)],
        )
        .await
        .unwrap();
    }
    // Mark this page, so that what follows waits for the page the form leads to.
    c.execute("document.body.dataset.submitted = 'yes';", vec![]).await.unwrap();
    c.find(Locator::Css(&format!("{form} button[type='submit']"))).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("body:not([data-submitted])")).await.unwrap();
}

fn hl7(control: &str, kind: &str, segments: &[&str]) -> String {
    let mut s = format!("MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000-0500||{kind}|{control}|P|2.5.1\r");
    for seg in segments {
        s.push_str(seg);
        s.push('\r');
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinators_shift_in_the_browser() {
    let t = TestApp::builder(Backend::Sqlite).live().spawn().await;
    t.app.save_user("casey", Role::Coordinator, "correct horse battery").await.unwrap();
    t.app.save_user("sam", Role::Coordinator, "another long secret").await.unwrap();
    let order = |patient: &str, name: &str, phone: &str, consent: bool, specialty: &str| {
        json!({"patient_id": patient, "referring_provider": "dr-adams", "referring_provider_name": "Dr Ann Adams",
            "specialty": specialty, "patient": {"name": name, "phone": phone, "sms_consent": consent,
            "birth_date": "1958-07-14", "language": "Spanish"}})
    };
    // Two calls to make, a number to fix, and two referrals an appointment may belong to.
    let first = t.create_referral_id(order("p-garcia", "María García", "+15555550161", false, "cardiology")).await;
    t.advance("1h").await;
    let second = t.create_referral_id(order("p-baker", "Tom Baker", "+15555550162", false, "dermatology")).await;
    let broken = t.create_referral_id(order("p-nunez", "Inés Núñez", "555-0163", true, "neurology")).await;
    let cardio = t.create_referral_id(order("MRN1", "Jane Doe", "+15555550123", false, "cardiology")).await;
    let derm = t.create_referral_id(order("MRN1", "Jane Doe", "+15555550123", false, "dermatology")).await;
    let mut sch = vec![String::new(); 27];
    sch[0] = "SCH".into();
    sch[1] = "A1".into();
    let sch = sch.join("|");
    let pid = "PID|1||MRN1^^^NORTH^MR||DOE^JANE||19700101|F";
    let siu = hl7("S1", "SIU^S12^SIU_S12", &[&sch, "TQ1|||||||20260320100000-0500", pid]);
    let r = t.post_raw("/hl7v2", "application/hl7-v2", siu.into_bytes()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let review = t.get("/api/v1/inbox?status=review").await.body["items"][0]["id"].as_str().unwrap().to_owned();
    // A patient who texts back with a question.
    let talker = t.create_referral_id(order("p-ito", "Hana Ito", "+15555550164", true, "endocrinology")).await;
    t.advance("1m").await;
    assert_eq!(t.deliver_sms().await, 1);
    let fake = t.twilio.as_ref().unwrap().clone();
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    t.advance("1d2h").await; // the call tasks are overdue now
    fake.reply(&inbound, "+15555550164", "Is there parking at the clinic?", "SM-ito").await;

    let driver = start_driver().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": std::env::var("TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    let mut pages = Pages { c: c.clone(), axe: axe_source(), dir: screenshots(), taken: Vec::new() };

    // Signing in.
    c.goto(&format!("{}/worklist", t.base)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    pages.check("01-login").await;
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", "casey").await.unwrap();
    form.set_by_name("password", "correct horse battery").await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("claim-next")).await.unwrap();
    pages.check("02-worklist").await;

    // Filter: overdue, then mine (nothing yet).
    fill_and_submit(&c, "form.filters", &[("view", "overdue")]).await;
    c.wait().for_element(Locator::XPath("//option[@value='overdue'][@selected]")).await.unwrap();
    let rows = c.find_all(Locator::Css("#tasks tr[data-task]")).await.unwrap();
    assert!(rows.len() >= 2, "the two overdue calls");
    let text = c.find(Locator::Id("tasks")).await.unwrap().text().await.unwrap();
    assert!(text.contains("María García") && text.contains("Tom Baker"), "patients by name: {text}");
    assert!(text.contains("•••• 0161") && !text.contains("+15555550161"), "phones masked");
    pages.check("03-worklist-overdue").await;
    fill_and_submit(&c, "form.filters", &[("view", "mine")]).await;
    c.wait().for_element(Locator::XPath("//option[@value='mine'][@selected]")).await.unwrap();
    assert!(c.find_all(Locator::Css("#tasks tr[data-task]")).await.unwrap().is_empty(), "nothing claimed yet");

    // Claim next: the longest-due call, on its referral's page, patient and phone in view.
    c.find(Locator::Id("claim-next")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("timeline")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with(&first), "the oldest call first");
    let page = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(page.contains("María García") && page.contains("1958-07-14") && page.contains("Spanish"), "{page}");
    assert!(page.contains("Dr Ann Adams"), "the referring provider by name");
    c.find(Locator::Css("a[aria-label^='Show the phone number']")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::XPath("//span[@class='phone'][text()='+15555550161']")).await.unwrap();
    pages.check("04-referral").await;
    let call = t.tasks_of(&first).await[0]["id"].as_str().unwrap().to_owned();
    c.execute("document.getElementById(arguments[0]).open = true;", vec![json!(format!("task-{call}"))]).await.unwrap();
    let outcome = format!("#task-{call} form.outcome");
    fill_and_submit(
        &c,
        &outcome,
        &[("outcome", "scheduled"), ("appointment_at", "2026-03-20T10:30"), ("note", "booked by phone")],
    )
    .await;
    c.wait().for_element(Locator::XPath("//td[@id='state'][text()='scheduled']")).await.unwrap();
    let r = t.referral(&first).await;
    assert_eq!(
        (r["state"].as_str(), r["appointment_at"].as_str()),
        (Some("scheduled"), Some("2026-03-20T10:30:00.000Z"))
    );
    let timeline = c.find(Locator::Id("timeline")).await.unwrap().text().await.unwrap();
    assert!(timeline.contains("task-claimed") && timeline.contains("task-completed"), "{timeline}");

    // No answer on the next call: it comes back later, the attempt counted.
    c.goto(&format!("{}/worklist", t.base)).await.unwrap();
    let call = t.tasks_of(&second).await[0]["id"].as_str().unwrap().to_owned();
    c.wait().for_element(Locator::Css(&format!("tr[data-task='{call}']"))).await.unwrap();
    c.execute("document.getElementById(arguments[0]).open = true;", vec![json!(format!("task-{call}"))]).await.unwrap();
    fill_and_submit(&c, &format!("#task-{call} form.outcome"), &[("outcome", "no-answer")]).await;
    c.wait().for_element(Locator::XPath(&format!("//tr[@data-task='{call}']//span[@class='attempts']"))).await.unwrap();
    let task = t.tasks_of(&second).await.into_iter().find(|x| x["id"] == call.as_str()).unwrap();
    assert_eq!((task["status"].as_str(), task["attempts"].as_u64()), (Some("open"), Some(1)));
    assert!(task["due_at"].as_str().unwrap() > "2026-03-03T15:00:00.000Z", "later, not now");

    // Fix the number on the fix-contact task: exactly one new text, to the fixed number.
    let fix = t.tasks_of(&broken).await[0].clone();
    assert_eq!(fix["kind"], "fix-contact");
    let fix = fix["id"].as_str().unwrap().to_owned();
    let before = t.twilio.as_ref().unwrap().sent().len();
    c.execute("document.getElementById(arguments[0]).open = true;", vec![json!(format!("task-{fix}"))]).await.unwrap();
    fill_and_submit(&c, &format!("#task-{fix} form.outcome"), &[("outcome", "phone-fixed"), ("phone", "+15555550173")])
        .await;
    c.wait().for_element(Locator::Id("claim-next")).await.unwrap();
    t.advance("1m").await;
    let sent = t.twilio.as_ref().unwrap().sent();
    assert_eq!(sent.len(), before + 1, "one new text");
    assert_eq!(sent.last().unwrap().to, "+15555550173");

    // The review queue: the appointment's message, applied to the cardiology referral.
    c.goto(&format!("{}/worklist", t.base)).await.unwrap();
    c.find(Locator::Css(&format!("#review-queue a[href='/inbox/{review}']"))).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("candidates")).await.unwrap();
    let msg = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(msg.contains("PID-5") && msg.contains("Patient Name") && msg.contains("DOE^JANE"), "{msg}");
    pages.check("05-review-item").await;
    c.find(Locator::XPath(&format!("//form[input[@name='referral_id'][@value='{cardio}']]/button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::XPath("//td[@id='state'][text()='scheduled']")).await.unwrap();
    assert_eq!(t.referral(&cardio).await["appointment_at"], "2026-03-20T15:00:00.000Z", "the appointment recorded");
    for id in [&cardio, &derm] {
        assert!(t.tasks_of(id).await.iter().all(|x| x["kind"] != "review-match" || x["status"] == "done"));
    }
    assert_eq!(t.referral(&derm).await["state"], "ordered");

    // Answer the patient's text from the SMS inbox.
    c.goto(&format!("{}/worklist", t.base)).await.unwrap();
    let inbox = c.wait().for_element(Locator::Id("sms-inbox")).await.unwrap().text().await.unwrap();
    assert!(inbox.contains("Hana Ito") && inbox.contains("Is there parking at the clinic?"), "{inbox}");
    c.find(Locator::Css(&format!("#sms-inbox a[href='/referrals/{talker}#sms']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("#sms textarea")).await.unwrap();
    pages.check("13-sms-thread").await;
    let before = fake.sent().len();
    fill_and_submit(&c, "#sms form", &[("text", "Yes: the garage on 5th St, free for patients.")]).await;
    c.wait().for_element(Locator::XPath("//ol[@class='thread']/li[contains(., 'garage on 5th St')]")).await.unwrap();
    t.advance("1m").await;
    let sent = fake.sent();
    assert_eq!(sent.len(), before + 1, "one text");
    assert_eq!(
        (sent[before].to.as_str(), sent[before].body.as_str()),
        ("+15555550164", "Yes: the garage on 5th St, free for patients.")
    );

    // A fax without our code came in: it waits in Unfiled documents on the worklist; filing it
    // as the dermatology referral's consult note closes that loop.
    let body = serde_json::to_vec(&json!({"id": "fx-browser-1", "file": base64::engine::general_purpose::STANDARD
        .encode(fax_pdf(&["Dermatology consultation", "Plan: biopsy of the left forearm lesion"]))}))
    .unwrap();
    let r = post_signed(&format!("{}/webhooks/fax/inbound", t.base), FAX_WEBHOOK_SECRET, body).await;
    assert_eq!(r.status().as_u16(), 201);
    c.goto(&format!("{}/worklist", t.base)).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#unfiled-documents a[href^='/documents/doc_']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("iframe.document")).await.unwrap();
    pages.check("17-unfiled-fax").await;
    fill_and_submit(&c, "form[method='get'][action^='/documents/']", &[("q", "MRN1")]).await;
    c.wait().for_element(Locator::Id("candidates")).await.unwrap();
    pages.check("18-unfiled-fax-search").await;
    c.find(Locator::XPath(&format!("//form[input[@name='referral_id'][@value='{derm}']]/button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::XPath("//td[@id='state'][text()='note-received']")).await.unwrap();
    assert_eq!(t.referral(&derm).await["state"], "note-received");
    assert_eq!(t.referral(&cardio).await["state"], "scheduled", "only the one it was filed on");
    let docs = c.find(Locator::Id("documents")).await.unwrap().text().await.unwrap();
    assert!(docs.contains("fax.pdf") && docs.contains("consult note"), "{docs}");
    // A Direct message carrying a discharge summary (not a note): a C-CDA rendered, inert.
    let summary = direct_letter(
        "<ds-1@direct.example>",
        "Discharge summary",
        None,
        Some(("summary.xml", &cda_example("Discharge_Summary.xml"))),
    );
    let arrival =
        Arrival { source: "mailbox", control_id: "ds-1@direct.example", message_type: "direct", raw: &summary };
    t.app.receive("direct", arrival, &Via { transport: "imap", remote: None, token: None }).await.unwrap();
    pages.go(&t.base, "/documents", "19-unfiled-documents").await;
    c.find(Locator::Css("#documents a[href^='/documents/doc_']")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("article.cda")).await.unwrap();
    let shown = c.find(Locator::Css("article.cda")).await.unwrap().text().await.unwrap();
    assert!(shown.contains("Patient") && shown.len() > 200, "{shown}");
    let scripts = c.execute("return document.querySelectorAll('article.cda script, article.cda [onload], article.cda [onerror]').length;", vec![]).await.unwrap();
    assert_eq!(scripts, json!(0));
    pages.check("20-cda-document").await;

    // Every other page, checked the same way.
    t.app.save_user("root", Role::Admin, "an admin's long secret").await.unwrap();
    pages.go(&t.base, "/", "06-dashboard").await;
    // The period presets and the legend of weeks that are not mature yet.
    let html = c.source().await.unwrap();
    assert!(html.contains(">Last quarter</a>") && html.contains("not mature yet"), "presets and the maturity legend");
    pages.go(&t.base, "/?baseline_from=2026-01-01&baseline_to=2026-02-28", "06b-dashboard-against-baseline").await;
    pages.go(&t.base, "/referrals", "07-referrals").await;
    pages.go(&t.base, "/referrals?q=garc", "08-referral-search").await;
    pages.go(&t.base, "/worklist?view=done-today", "09-done-today").await;
    pages.go(&t.base, "/directory", "10-directory").await;
    pages.go(&t.base, "/settings", "11-settings").await;
    pages.go(&t.base, "/reports/cms50", "11b-cms50").await;
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    let form = c.wait().for_element(Locator::Css("form[action='/login']")).await.unwrap();
    let _ = form;
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", "root").await.unwrap();
    form.set_by_name("password", "an admin's long secret").await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Css("main h1")).await.unwrap();
    pages.go(&t.base, "/inbox", "12-messages").await;
    // An admin's view of a referral: who looked at the patient; then the audit log.
    pages.go(&t.base, &format!("/referrals/{talker}#who-looked"), "13-who-looked").await;
    pages.go(&t.base, "/admin/audit?action=read", "14-audit").await;
    pages.go(&t.base, "/account/mfa", "15-two-step-sign-in").await;
    pages.go(&t.base, "/admin/access", "16-access").await;
    c.close().await.unwrap();
    for name in &pages.taken {
        assert!(std::fs::metadata(pages.dir.join(name)).unwrap().len() > 1000, "{name}");
    }
    assert_eq!(pages.taken.len(), 46);
}
