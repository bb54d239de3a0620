//! A person in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by `scripts/test`) driven over WebDriver. Signs in, opens the dashboard, the
//! referral list, a referral's timeline and the worklist, claims and completes a task, and
//! saves a screenshot of each page under `target/tmp/screenshots/`.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{ClientBuilder, Locator};
use refloop_app::Role;
use refloop_testkit::{Backend, TestApp};
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
    let bin = std::env::var("REFLOOP_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_works_a_referral_in_the_browser() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    t.app.save_user("casey", Role::Coordinator, "correct horse battery").await.unwrap();
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-browser", "referring_provider": "dr-adams", "specialty": "cardiology",
            "patient": {"phone": "+15555550160", "sms_consent": false}}),
        )
        .await;
    let closed = t
        .create_referral_id(
            json!({"patient_id": "p-closed", "referring_provider": "dr-adams", "specialty": "cardiology"}),
        )
        .await;
    for (kind, at) in [
        ("scheduled", "2026-03-03T15:00:00Z"),
        ("attended", "2026-03-04T15:00:00Z"),
        ("note-received", "2026-03-05T15:00:00Z"),
    ] {
        t.event(&closed, json!({"type": kind, "at": at, "appointment_at": "2026-03-04T15:00:00Z"})).await;
    }
    t.advance("1d").await;

    let driver = start_driver().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": std::env::var("REFLOOP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    let shots = screenshots();
    let shot = |name: &'static str| {
        let c = c.clone();
        let path = shots.join(format!("{name}.png"));
        async move { std::fs::write(&path, c.screenshot().await.unwrap()).unwrap() }
    };

    // Signing in.
    c.goto(&format!("{}/", t.base)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    shot("01-login").await;
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", "casey").await.unwrap();
    form.set_by_name("password", "correct horse battery").await.unwrap();
    form.submit().await.unwrap();
    let rate = c.wait().for_element(Locator::Id("closed-loop-rate")).await.unwrap();
    assert_eq!(rate.text().await.unwrap(), "50.0%", "one of two referrals closed its loop");
    assert!(c.find(Locator::Css("svg title")).await.is_ok(), "the charts are drawn");
    shot("02-dashboard").await;

    // The list, then the open referral's timeline.
    c.find(Locator::LinkText("Referrals")).await.unwrap().click().await.unwrap();
    let link = c.wait().for_element(Locator::LinkText(&id)).await.unwrap();
    assert!(c.find(Locator::LinkText(&closed)).await.is_ok());
    shot("03-referrals").await;
    link.click().await.unwrap();
    let timeline = c.wait().for_element(Locator::Id("timeline")).await.unwrap();
    let text = timeline.text().await.unwrap();
    assert!(text.contains("ordered") && text.contains("task-opened"), "{text}");
    assert_eq!(c.find(Locator::Id("state")).await.unwrap().text().await.unwrap(), "ordered");
    shot("04-timeline").await;

    // The worklist: claim the call task, then complete it.
    c.find(Locator::LinkText("Worklist")).await.unwrap().click().await.unwrap();
    let row = format!("#tasks tr[data-task] td a[href='/referrals/{id}']");
    c.wait().for_element(Locator::Css(&row)).await.unwrap();
    shot("05-worklist").await;
    let task_id = t.tasks_of(&id).await[0]["id"].as_str().unwrap().to_owned();
    c.find(Locator::Css(&format!("tr[data-task='{task_id}'] button[name='claim']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Wait for the page after the redirect, not the one clicked on.
    let claimed = format!("//tr[@data-task='{task_id}']/td[@class='status'][text()='claimed']");
    c.wait().for_element(Locator::XPath(&claimed)).await.unwrap();
    assert_eq!(t.tasks_of(&id).await[0]["assignee"], "casey");
    shot("06-claimed").await;
    c.find(Locator::Css(&format!("tr[data-task='{task_id}'] button[name='complete']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::XPath("//p[starts-with(normalize-space(.), '0 open')]")).await.unwrap();
    assert!(
        c.find(Locator::Css(&format!("tr[data-task='{task_id}']"))).await.is_err(),
        "a done task leaves the worklist"
    );
    let done = t.tasks_of(&id).await.into_iter().find(|x| x["id"] == task_id.as_str()).unwrap();
    assert_eq!(done["status"], "done");
    shot("07-completed").await;
    c.close().await.unwrap();
    for name in ["01-login", "02-dashboard", "03-referrals", "04-timeline", "05-worklist", "06-claimed", "07-completed"]
    {
        assert!(std::fs::metadata(shots.join(format!("{name}.png"))).unwrap().len() > 1000);
    }
}
