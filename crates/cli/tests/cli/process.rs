//! Running `refloop` as a child process and talking to it over HTTP.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

pub const START: &str = "2026-03-02T15:00:00Z";

pub fn refloop() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refloop"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs a `refloop` command to completion; returns (success, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = refloop().args(args).envs(env.iter().copied()).output().expect("run refloop");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Migrates a database and makes an admin token on it (before any `serve` starts, so that
/// several processes never race to migrate).
pub fn prepared(database: &str) -> String {
    token(database, "admin")
}

/// The environment of a process on the system clock that texts through `fake`, with quiet
/// hours off, and `extra` settings.
pub fn texting_env(fake: &refloop_testkit::FakeTwilio, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = fake.env();
    let live = [
        ("REFLOOP_CLOCK_MODE", "system"),
        ("REFLOOP_WORKFLOW_QUIET_HOURS_START", "00:00"),
        ("REFLOOP_WORKFLOW_QUIET_HOURS_END", "00:00"),
    ];
    env.extend(live.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

/// `env` as the pairs [`Serve::start`] takes.
pub fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Makes or migrates `database` (commands other than `migrate` and `serve` refuse a SQLite
/// file that is not there).
pub fn migrated(database: &str) {
    let (ok, _, err) = run(&["migrate", "--database", database], &[]);
    assert!(ok, "{err}");
}

/// Adds a web user (the password on standard input, as an operator would); (ok, stdout, stderr).
pub fn add_user(database: &str, name: &str, role: &str, password: &str) -> (bool, String, String) {
    use std::io::Write;
    migrated(database);
    let mut child = refloop()
        .args(["user", "add", name, "--role", role, "--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run refloop user add");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    let out = child.wait_with_output().expect("refloop user add");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates a token of `role` on `database`.
pub fn token(database: &str, role: &str) -> String {
    migrated(database);
    let (ok, out, err) = run(&["token", "create", "--role", role, "--name", "cli-test", "--database", database], &[]);
    assert!(ok, "token create failed: {err}");
    out.trim().to_owned()
}

/// A `refloop serve` child on a loopback port with a manual clock.
pub struct Serve {
    child: Child,
    pub base: String,
    pub mllp: std::net::SocketAddr,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

async fn until_logged(log: &Mutex<String>, text: &str) -> bool {
    for _ in 0..600 {
        if log.lock().unwrap().contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A `refloop serve` child that has not yet said where it listens.
pub struct Launching {
    child: Child,
    log: Arc<Mutex<String>>,
    addrs: mpsc::Receiver<(&'static str, String)>,
}

impl Launching {
    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until it logs `text`; false if it did not.
    pub async fn until_logged(&self, text: &str) -> bool {
        until_logged(&self.log, text).await
    }

    /// Waits until both listeners are up.
    pub fn listening(mut self) -> Serve {
        let (mut http, mut mllp) = (None, None);
        while http.is_none() || mllp.is_none() {
            match self.addrs.recv_timeout(Duration::from_secs(60)) {
                Ok(("http", addr)) => http = Some(addr),
                Ok((_, addr)) => mllp = Some(addr),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("refloop serve did not start:\n{}", self.log());
                }
            }
        }
        Serve {
            child: self.child,
            base: http.unwrap_or_default(),
            mllp: mllp.unwrap_or_default().parse().expect("an MLLP address"),
            log: self.log,
            http: reqwest::Client::new(),
        }
    }
}

impl Serve {
    pub fn start(database: &str, extra_env: &[(&str, &str)], extra_args: &[&str]) -> Serve {
        Serve::launch(database, extra_env, extra_args).listening()
    }

    /// Starts the process without waiting for it to listen.
    pub fn launch(database: &str, extra_env: &[(&str, &str)], extra_args: &[&str]) -> Launching {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut child = refloop()
            .args(["serve", "--database", database, "--http", "127.0.0.1:0", "--mllp", "127.0.0.1:0"])
            .args(["--allow-manual-clock"])
            .args(extra_args)
            .env("REFLOOP_CLOCK_MODE", "manual")
            .env("REFLOOP_CLOCK_START", START)
            // The tests send from many made-up systems; the sender list has its own test.
            .env("REFLOOP_HL7_ALLOW_ANY_SENDER", "true")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn refloop serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, addrs) = mpsc::channel();
        let sink = log.clone();
        // The address ends at a space (text logs) or a quote (JSON logs).
        let first = |s: &str| s.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default().to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("MLLP listening on mllp://").nth(1) {
                    let _ = tx.send(("mllp", first(addr)));
                }
                for scheme in ["http", "https"] {
                    if let Some(addr) = line.split(&format!("listening on {scheme}://")).nth(1) {
                        let addr = first(addr);
                        let _ = tx.send(("http", format!("{scheme}://{addr}")));
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Launching { child, log, addrs }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until it logs `text`; false if it did not.
    pub async fn until_logged(&self, text: &str) -> bool {
        until_logged(&self.log, text).await
    }

    /// Whether `username` / `password` signs in through the sign-in form.
    pub async fn signs_in(&self, username: &str, password: &str) -> bool {
        self.sign_in(username, password).await == 303
    }

    /// The status of a sign-in through the form: 303 when it worked.
    pub async fn sign_in(&self, username: &str, password: &str) -> u16 {
        self.session(username, password).await.0
    }

    /// A page of the web UI as the signed-in `session` (a cookie value) sees it.
    pub async fn page(&self, session: &str, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("refloop_session={session}"))
            .send()
            .await
            .expect("a page");
        (resp.status().as_u16(), resp.text().await.unwrap_or_default())
    }

    /// Signs in through the form: the answer's status, and the session cookie's value when
    /// it worked.
    pub async fn session(&self, username: &str, password: &str) -> (u16, Option<String>) {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        let form = http.get(format!("{}/login", self.base)).send().await.expect("the sign-in form");
        let cookies: Vec<String> = form
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect();
        let html = form.text().await.unwrap_or_default();
        let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
        let answer = http
            .post(format!("{}/login", self.base))
            .header("cookie", cookies.join("; "))
            .form(&[("csrf", csrf), ("next", "/"), ("username", username), ("password", password)])
            .send()
            .await
            .expect("a sign-in answer");
        let session = answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok()?.split(';').next()?.strip_prefix("refloop_session=").map(str::to_owned))
            .find(|v| !v.is_empty());
        (answer.status().as_u16(), session)
    }

    /// Its /readyz status (0 when it does not answer).
    pub async fn ready(&self) -> u16 {
        let url = format!("{}/readyz", self.base);
        self.http.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    /// Waits (up to 30 s) until /readyz answers `want`.
    pub async fn until_ready_is(&self, want: u16) -> bool {
        for _ in 0..300 {
            if self.ready().await == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The first source id of every referral, page by page.
    pub async fn source_ids(&self, token: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self.call(token, "GET", &format!("/api/v1/referrals?limit=200{cursor}"), None).await;
            assert_eq!(status, 200, "{page}");
            for r in page["items"].as_array().expect("items") {
                ids.push(r["source_ids"][0].as_str().unwrap_or_default().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return ids,
            }
        }
    }

    /// Waits (up to two minutes) until no outbox item is left to settle (pending, sending or
    /// unconfirmed); the items.
    pub async fn until_outbox_settled(&self, token: &str) -> Vec<Value> {
        const UNSETTLED: [&str; 3] = ["pending", "sending", "unconfirmed"];
        for _ in 0..1200 {
            let items = self.outbox(token).await;
            if !items.iter().any(|i| UNSETTLED.contains(&i["status"].as_str().unwrap_or_default())) {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the outbox did not settle: {:?}", self.outbox(token).await);
    }

    /// The outbox items (up to 500).
    pub async fn outbox(&self, token: &str) -> Vec<Value> {
        let (status, page) = self.call(token, "GET", "/api/v1/outbox?limit=500", None).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM and waits for it; returns what it logged.
    pub fn stop(mut self) -> String {
        self.terminate();
        let status = self.child.wait().expect("wait for refloop serve");
        assert!(status.success(), "serve exited with {status}");
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// Waits up to `within` for the process to exit: whether it exited cleanly, and what it
    /// logged; `None` (and the process killed) if it was still running.
    pub async fn exited_within(mut self, within: Duration) -> Option<(bool, String)> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("wait for refloop serve") {
                return Some((status.success(), self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        let req = req.bearer_auth(token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The kinds of the referral's tasks.
    pub async fn task_kinds(&self, token: &str, id: &str) -> Vec<String> {
        let (status, tasks) = self.call(token, "GET", &format!("/api/v1/tasks?referral_id={id}"), None).await;
        assert_eq!(status, 200, "{tasks}");
        tasks["items"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap().to_owned()).collect()
    }

    pub async fn advance(&self, token: &str, by: &str) -> Value {
        let (status, body) = self.call(token, "POST", "/api/v1/clock/advance", Some(json!({ "by": by }))).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
