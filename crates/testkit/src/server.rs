//! The real HTTP server on a loopback port, with a manual clock.

use std::{net::SocketAddr, sync::Arc};

use futures_util::{SinkExt, StreamExt};
use refloop_fhir::{FhirConfig, FhirIngest};
use refloop_hl7::{Ingest, ListenerConfig, MapConfig, MllpCodec, serve_mllp};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use jiff::Timestamp;
use refloop_app::{App, Clock, ManualClock, Role};
use refloop_connectors::LogOnly;
use refloop_domain::Policy;
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot};

use crate::db::{Backend, TestDb};

/// The process-wide Prometheus recorder (installed once per test binary).
fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("a metrics recorder")
        })
        .clone()
}

/// Parses an RFC 3339 instant (test shorthand).
pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

pub struct TestAppBuilder {
    backend: Backend,
    start: Timestamp,
    policy: Policy,
    manual: bool,
    /// Pull mode: the EHR's FHIR base URL and auth.
    ehr: Option<(String, refloop_fhir::EhrAuth)>,
    ehr_types: Vec<String>,
    sms: Option<crate::FakeTwilio>,
    chat: Option<crate::FakeChat>,
    problems: Option<refloop_app::problems::ProblemSettings>,
    fax: Option<crate::FakeFax>,
    direct: Option<crate::FakeSmtp>,
    /// Write Tasks back to this fake EHR (SMART auth).
    ehr_write: Option<crate::FakeEhr>,
    /// Start a fake SMS provider and a fake chat for the channels not given.
    live: bool,
    /// How long one request to the SMS provider may take.
    sms_timeout: std::time::Duration,
    outbox: refloop_app::OutboxSettings,
    retention: refloop_app::Retention,
    /// Roles that must sign in with a second factor (none unless a test asks).
    mfa_required: Vec<refloop_app::Role>,
    /// The HTTP listener, when the test bound it first (to tell an identity provider where
    /// to send browsers back before the app starts).
    listener: Option<TcpListener>,
    oidc: Option<refloop_web::Oidc>,
    token_writes_per_minute: usize,
}

impl TestAppBuilder {
    /// Pull mode against an EHR's FHIR server (e.g. a fake on loopback), for `types`, two
    /// resources a page (so paging is exercised).
    /// Patient SMS through the production Twilio connector against `fake`.
    pub fn sms(mut self, fake: &crate::FakeTwilio) -> Self {
        self.sms = Some(fake.clone());
        self
    }

    /// Patient SMS and stage-2 chat live, each through its production connector against a fake
    /// of its vendor started here (kept in [`TestApp::twilio`] and [`TestApp::chat`]) unless
    /// given with [`Self::sms`] / [`Self::chat`]. Without it those channels are off (log only).
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// An API token may write this many times a minute.
    pub fn token_writes_per_minute(mut self, n: usize) -> Self {
        self.token_writes_per_minute = n;
        self
    }

    /// Serve HTTP on `listener` (bound by the test) with single sign-on through `oidc`.
    pub fn sso(mut self, listener: TcpListener, oidc: refloop_web::Oidc) -> Self {
        self.listener = Some(listener);
        self.oidc = Some(oidc);
        self
    }

    /// Admins must sign in with a second factor, as `[auth] mfa_required` has it by default
    /// (other tests sign in with a password alone).
    pub fn admin_mfa(mut self) -> Self {
        self.mfa_required = vec![refloop_app::Role::Admin];
        self
    }

    /// Stage-2 chat messages to `fake`.
    pub fn chat(mut self, fake: &crate::FakeChat) -> Self {
        self.chat = Some(fake.clone());
        self
    }

    /// Operational problems are posted to the chat given with [`TestAppBuilder::chat`].
    pub fn problems(mut self, settings: refloop_app::problems::ProblemSettings) -> Self {
        self.problems = Some(settings);
        self
    }

    /// Note requests by fax to `fake`.
    pub fn fax(mut self, fake: &crate::FakeFax) -> Self {
        self.fax = Some(fake.clone());
        self
    }

    /// Note requests by Direct through `fake` (an SMTP sink as the HISP relay).
    pub fn direct(mut self, fake: &crate::FakeSmtp) -> Self {
        self.direct = Some(fake.clone());
        self
    }

    /// FHIR Task write-back to `fake` (SMART Backend Services auth).
    pub fn ehr_write_back(mut self, fake: &crate::FakeEhr) -> Self {
        self.ehr_write = Some(fake.clone());
        self
    }

    pub fn pull_from(mut self, base: &str, auth: refloop_fhir::EhrAuth, types: &[&str]) -> Self {
        self.ehr = Some((base.to_owned(), auth));
        self.ehr_types = types.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The manual clock starts here (default 2026-03-02T15:00:00Z, a Monday 10:00 in New York).
    pub fn start(mut self, at: &str) -> Self {
        self.start = ts(at);
        self
    }

    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long one request to the SMS provider may take (default 20 s).
    pub fn sms_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.sms_timeout = timeout;
        self
    }

    /// The outbox worker's lease, batch size and concurrency.
    pub fn outbox(mut self, settings: refloop_app::OutboxSettings) -> Self {
        self.outbox = settings;
        self
    }

    /// How long data is kept (`[retention]`).
    pub fn retention(mut self, retention: refloop_app::Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Run on the system clock instead of the manual one.
    pub fn system_clock(mut self) -> Self {
        self.manual = false;
        self
    }

    pub async fn spawn(mut self) -> TestApp {
        if self.live {
            if self.sms.is_none() {
                self.sms = Some(crate::FakeTwilio::start().await);
            }
            if self.chat.is_none() {
                self.chat = Some(crate::FakeChat::start().await);
            }
        }
        let (twilio, chat_fake) = (self.sms.clone(), self.chat.clone());
        let db = TestDb::new(self.backend).await;
        let store = db.store().await;
        let clock: Arc<dyn Clock> =
            if self.manual { Arc::new(ManualClock::new(self.start)) } else { Arc::new(refloop_app::SystemClock) };
        let map = MapConfig::with_defaults(self.policy.time_zone.clone());
        let listener = match self.listener.take() {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port"),
        };
        let addr = listener.local_addr().expect("a local address");
        // With a fake SMS provider, SMS goes through the production Twilio connector; the
        // provider calls back to this server's webhooks.
        let texts = refloop_connectors::SmsTexts::with_defaults("North Clinic", "+15555550100");
        let sms = self.sms.as_ref().map(|fake| {
            let cfg = refloop_connectors::TwilioConfig {
                api_base: fake.base.clone(),
                account_sid: crate::fake_twilio::ACCOUNT_SID.into(),
                auth_token: crate::fake_twilio::AUTH_TOKEN.into(),
                from: "+15555550999".into(),
                status_callback: format!("http://{addr}/webhooks/sms/status"),
                texts: texts.clone(),
                link_base: format!("http://{addr}"),
                timeout: self.sms_timeout,
            };
            let hooks = refloop_web::SmsWebhooks {
                auth_token: crate::fake_twilio::AUTH_TOKEN.into(),
                status_url: format!("http://{addr}/webhooks/sms/status"),
                inbound_url: format!("http://{addr}/webhooks/sms/inbound"),
                texts: texts.clone(),
            };
            (cfg, hooks)
        });
        let mut channels = refloop_connectors::Channels::log_only();
        if let Some((cfg, _)) = &sms {
            channels.sms = Arc::new(refloop_connectors::Twilio::new(cfg.clone(), store.clone()));
        }
        if let Some(chat) = &self.chat {
            channels.chat =
                Arc::new(refloop_connectors::SlackWebhook::new(&chat.url, "https://refloop.example", store.clone()));
        }
        if self.fax.is_some() || self.direct.is_some() {
            let direct = self.direct.as_ref().map(|smtp| refloop_connectors::DirectConfig {
                relay_host: smtp.host.clone(),
                relay_port: smtp.port,
                tls: "none".into(),
                username: String::new(),
                password: String::new(),
                from: "referrals@direct.north-clinic.example".into(),
            });
            let cfg = refloop_connectors::FaxConfig {
                api_base: self.fax.as_ref().map(|f| f.base.clone()).unwrap_or_default(),
                api_key: crate::fake_fax::FAX_KEY.into(),
                api_secret: crate::fake_fax::FAX_SECRET.into(),
                practice: "North Clinic".into(),
                practice_phone: "+15555550100".into(),
            };
            channels.note_request =
                Arc::new(refloop_connectors::NoteRequests::new(cfg, direct, store.clone(), clock.clone()));
        }
        if let Some(ehr) = &self.ehr_write {
            self.policy.note_write_back = true;
            let auth = refloop_fhir::EhrAuth::smart(
                crate::fake_ehr::CLIENT_ID,
                &ehr.token_url,
                crate::fake_ehr::SMART_PRIVATE_KEY,
                "system/*.write",
            )
            .expect("the test key");
            let client = Arc::new(refloop_fhir::EhrClient::new(&ehr.base, auth));
            channels.ehr_task =
                Arc::new(refloop_fhir::EhrWriter::new(client, store.clone(), clock.clone(), texts.clone()));
        }
        let lookup_ingest = Arc::new(std::sync::OnceLock::new());
        if let Some((base, auth)) = &self.ehr {
            let client = Arc::new(refloop_fhir::EhrClient::new(base, auth.clone()));
            channels.note_lookup =
                Arc::new(refloop_fhir::NoteLookup::new(client, store.clone(), clock.clone(), lookup_ingest.clone()));
        }
        let connector: Arc<dyn refloop_app::Connector> = Arc::new(channels);
        let auth = refloop_app::AuthSettings {
            mfa_required: self.mfa_required,
            token_writes_per_minute: self.token_writes_per_minute,
            ..Default::default()
        };
        let fhir_cfg = FhirConfig { time_zone: map.time_zone.clone(), specialty_map: map.specialty_map.clone() };
        let app = App::new(store, clock, self.policy, connector)
            .with_texts(texts.clone())
            .with_outbox(self.outbox)
            .with_retention(self.retention)
            .with_auth(auth)
            .with_protocol(Arc::new(refloop_hl7::Hl7Protocol::new(map.clone())))
            .with_protocol(Arc::new(refloop_fhir::FhirProtocol::new(fhir_cfg.clone())))
            .with_protocol(Arc::new(refloop_direct::DirectProtocol::with_hl7(Vec::new(), map.clone())))
            .with_protocol(Arc::new(refloop_direct::FaxProtocol))
            .with_protocol(Arc::new(refloop_app::SmsReplies));
        let app = match (&self.chat, self.problems) {
            (Some(chat), Some(settings)) => {
                let notices = refloop_connectors::SlackWebhook::new(&chat.url, "", app.store().clone());
                app.with_problem_notices(Arc::new(notices), settings)
            }
            _ => app,
        };
        let fhir = FhirIngest::new(app.clone(), fhir_cfg);
        let _ = lookup_ingest.set(fhir.clone());
        let ingest = Ingest::new(app.clone(), map).with_group_commit(64);
        let mllp_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let mllp = mllp_listener.local_addr().expect("a local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let poller = self.ehr.map(|(base, auth)| {
            let client = Arc::new(refloop_fhir::EhrClient::new(&base, auth));
            refloop_fhir::Poller::new(client, fhir.clone(), self.ehr_types.clone(), 2)
        });
        let state = refloop_web::AppState {
            app: app.clone(),
            hl7: ingest.clone(),
            fhir,
            poller: poller.clone(),
            sms: sms.map(|(_, hooks)| hooks),
            fax: Some(refloop_web::FaxWebhook::new(crate::FAX_WEBHOOK_SECRET)),
            metrics: Some(metrics_handle()),
            ui: refloop_web::UiInfo::default(),
            oidc: self.oidc,
        };
        tokio::spawn(async move {
            refloop_web::serve(state, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("the test server runs");
        });
        let (stop_mllp, mllp_stopped) = oneshot::channel::<()>();
        let hl7 = ingest.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = mllp_stopped.await;
            };
            serve_mllp(hl7, mllp_listener, ListenerConfig::default(), shutdown).await.expect("the MLLP listener runs");
        });
        let admin = app.create_token("test-admin", Role::Admin, None).await.expect("an admin token");
        TestApp {
            app,
            ingest,
            base: format!("http://{addr}"),
            mllp,
            admin,
            http: reqwest::Client::new(),
            poller,
            twilio,
            chat: chat_fake,
            sms_reported: std::sync::Mutex::new(0),
            _db: db,
            _stop: (stop, stop_mllp),
        }
    }
}

/// A running refloop with a manual clock, an admin token and an HTTP client.
pub struct TestApp {
    pub app: App,
    pub ingest: Ingest,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The MLLP listener's address.
    pub mllp: SocketAddr,
    pub admin: String,
    pub http: reqwest::Client,
    /// Pull mode, when the builder was given an EHR.
    pub poller: Option<refloop_fhir::Poller>,
    /// The fake SMS provider, when SMS is live.
    pub twilio: Option<crate::FakeTwilio>,
    /// The fake team chat, when chat is live.
    pub chat: Option<crate::FakeChat>,
    /// SMS the fake has reported delivered so far ([`TestApp::deliver_sms`]).
    sms_reported: std::sync::Mutex<usize>,
    _db: TestDb,
    _stop: (oneshot::Sender<()>, oneshot::Sender<()>),
}

/// A byte stream an MLLP client runs over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An MLLP client connection.
pub struct MllpClient {
    framed: Framed<Box<dyn Io>, MllpCodec>,
}

impl MllpClient {
    pub async fn connect(addr: SocketAddr) -> MllpClient {
        let stream = TcpStream::connect(addr).await.expect("connect to the MLLP listener");
        MllpClient::over(Box::new(stream))
    }

    /// Connects over TLS, trusting the test CA (`data/tls/ca.pem`) and presenting the
    /// client certificate `identity` (`"client"`, `"stranger"`) when given. The error is
    /// the handshake's, for tests of refused senders.
    pub async fn connect_tls(addr: SocketAddr, identity: Option<&str>) -> std::io::Result<MllpClient> {
        let stream = TcpStream::connect(addr).await?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
        let tls = crate::tls::connector(identity).connect(name, stream).await?;
        Ok(MllpClient::over(Box::new(tls)))
    }

    fn over(stream: Box<dyn Io>) -> MllpClient {
        MllpClient { framed: Framed::new(stream, MllpCodec::new(16 * 1024 * 1024)) }
    }

    /// Sends one message and returns its ACK, or `None` when the server closed the
    /// connection (or broke it off) instead of answering.
    pub async fn try_send(&mut self, message: &str) -> Option<String> {
        self.framed.send(message.as_bytes()).await.ok()?;
        let ack = self.framed.next().await?.ok()?;
        Some(String::from_utf8(ack.to_vec()).expect("a UTF-8 ACK"))
    }

    /// Sends one message and waits for its ACK.
    pub async fn send(&mut self, message: &str) -> String {
        self.framed.send(message.as_bytes()).await.expect("send an MLLP frame");
        let ack = self.framed.next().await.expect("an ACK").expect("a well-framed ACK");
        String::from_utf8(ack.to_vec()).expect("a UTF-8 ACK")
    }

    /// The next frame the server sends (e.g. an application ACK after an accept ACK).
    pub async fn next(&mut self) -> String {
        let ack = self.framed.next().await.expect("a frame").expect("a well-framed message");
        String::from_utf8(ack.to_vec()).expect("UTF-8")
    }

    /// Sends one message without waiting for an answer.
    pub async fn send_unanswered(&mut self, message: &str) {
        self.framed.send(message.as_bytes()).await.expect("send an MLLP frame");
    }
}

/// MSA-1 of an ACK.
pub fn ack_code(ack: &str) -> String {
    let m = refloop_hl7::parse(ack.as_bytes()).expect("the ACK parses");
    m.segment("MSA").and_then(|s| s.get(1, 1)).unwrap_or_default().to_owned()
}

/// A response's status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        let _ = rustls::crypto::ring::default_provider().install_default();
        TestAppBuilder {
            backend,
            start: ts("2026-03-02T15:00:00Z"),
            policy: Policy::default(),
            manual: true,
            ehr: None,
            ehr_types: Vec::new(),
            sms: None,
            chat: None,
            problems: None,
            fax: None,
            direct: None,
            ehr_write: None,
            live: false,
            sms_timeout: std::time::Duration::from_secs(20),
            outbox: refloop_app::OutboxSettings::default(),
            retention: refloop_app::Retention::default(),
            mfa_required: Vec::new(),
            listener: None,
            oidc: None,
            token_writes_per_minute: refloop_app::AuthSettings::default().token_writes_per_minute,
        }
    }

    pub async fn spawn(backend: Backend) -> TestApp {
        Self::builder(backend).spawn().await
    }

    /// A second "process" on the same database (its own pool and manual clock at this one's
    /// time) that posts operational problems to `chat`.
    pub async fn another_problem_watcher(
        &self,
        chat: &crate::FakeChat,
        settings: refloop_app::problems::ProblemSettings,
    ) -> App {
        let store: Arc<dyn refloop_app::Store> =
            Arc::new(refloop_store::SqlStore::connect(&self._db.url).await.expect("connect a second pool"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(self.app.now()));
        let notices = Arc::new(refloop_connectors::SlackWebhook::new(&chat.url, "", store.clone()));
        App::new(store, clock, self.app.policy().clone(), Arc::new(LogOnly)).with_problem_notices(notices, settings)
    }

    /// An HL7 ingest of a second "process": its own pool, app and group-commit writer on
    /// the same database, with a manual clock at this one's time.
    pub async fn another_process(&self) -> Ingest {
        let store = refloop_store::SqlStore::connect(&self._db.url).await.expect("connect a second pool");
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(self.app.now()));
        let policy = self.app.policy().clone();
        let map = MapConfig::with_defaults(policy.time_zone.clone());
        let app = App::new(Arc::new(store), clock, policy, Arc::new(LogOnly));
        Ingest::new(app, map).with_group_commit(64)
    }

    pub async fn token(&self, role: Role) -> String {
        self.app.create_token(&format!("test-{}", role.as_str()), role, None).await.expect("a token")
    }

    async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// GET with the admin token.
    /// Saves a directory entry through the API (`PUT /api/v1/specialists/{id}`, as admin).
    pub async fn save_specialist(&self, id: &str, entry: Value) {
        let saved = self
            .http
            .put(format!("{}/api/v1/specialists/{id}", self.base))
            .bearer_auth(&self.admin)
            .json(&entry)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(saved.status().as_u16(), 200, "saving specialist {id}");
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(&self.admin, path).await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Reply {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("GET");
        Self::reply(resp).await
    }

    /// POST JSON with the admin token.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_as(&self.admin, path, body).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Reply {
        let resp =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(&body).send().await.expect("POST");
        Self::reply(resp).await
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        Self::reply(resp).await
    }

    /// A FHIR request (`application/fhir+json`) with the admin token and extra headers;
    /// the answer's `Location` is in `body["_location"]` when there is one.
    pub async fn fhir(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.admin);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/fhir+json").body(b.to_string());
        }
        let resp = req.send().await.expect("a FHIR request");
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut reply = Self::reply(resp).await;
        if let (Some(l), Some(o)) = (location, reply.body.as_object_mut()) {
            o.insert("_location".into(), Value::String(l));
        }
        reply
    }

    /// The fake SMS provider reports every message it took since the last call delivered, as
    /// the carrier would; returns how many.
    pub async fn deliver_sms(&self) -> usize {
        let fake = self.twilio.as_ref().expect("SMS is live (TestApp::builder(..).live())");
        let sent = fake.sent();
        let from = std::mem::replace(&mut *self.sms_reported.lock().expect("lock"), sent.len());
        for sms in &sent[from..] {
            assert_eq!(fake.report(sms, "delivered").await, 204, "the status callback is taken");
        }
        sent.len() - from
    }

    /// Advances the manual clock through the API; asserts it worked.
    pub async fn advance(&self, by: &str) -> Value {
        let r = self.post("/api/v1/clock/advance", serde_json::json!({ "by": by })).await;
        assert_eq!(r.status, 200, "advance {by}: {:?}", r.body);
        r.body
    }

    /// Creates a referral; asserts 201 and returns its JSON.
    pub async fn create_referral(&self, body: Value) -> Value {
        let r = self.post("/api/v1/referrals", body).await;
        assert_eq!(r.status, 201, "create referral: {:?}", r.body);
        r.body
    }

    /// Creates a referral and returns its id.
    pub async fn create_referral_id(&self, body: Value) -> String {
        self.create_referral(body).await["id"].as_str().expect("a referral id").to_owned()
    }

    pub async fn referral(&self, id: &str) -> Value {
        let r = self.get(&format!("/api/v1/referrals/{id}")).await;
        assert_eq!(r.status, 200, "get referral {id}: {:?}", r.body);
        r.body
    }

    /// Records a staff event; asserts 200 and returns the referral.
    pub async fn event(&self, id: &str, body: Value) -> Value {
        let r = self.post(&format!("/api/v1/referrals/{id}/events"), body).await;
        assert_eq!(r.status, 200, "event on {id}: {:?}", r.body);
        r.body
    }

    /// The tasks of one referral (every status).
    pub async fn tasks_of(&self, id: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/tasks?referral_id={id}")).await;
        assert_eq!(r.status, 200, "tasks: {:?}", r.body);
        r.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// The outbox items of one referral.
    pub async fn outbox_of(&self, id: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/outbox?referral_id={id}")).await;
        assert_eq!(r.status, 200, "outbox: {:?}", r.body);
        r.body["items"].as_array().cloned().unwrap_or_default()
    }
}
