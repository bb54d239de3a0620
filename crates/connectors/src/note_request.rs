//! Note requests to the specialist (stage 4): by Direct — an email over SMTP through the
//! practice's HISP relay to the specialist's Direct address — or by fax through a fax
//! provider's HTTP API (Phaxio-style: `POST {api_base}/v2.1/faxes`, form-encoded `to` and
//! `string_data` as HTML, basic auth). Direct is preferred when the directory has an
//! address. A missing or stale directory entry is not used — the request fails with the
//! reason, and a staff task takes over. Each fax is tagged with the outbox item's id
//! (`tags[refloop_message]`), by which the provider is asked (`GET …/v2.1/faxes?tag[…]=…`)
//! before a send whose outcome was unknown is repeated; each Direct message carries a
//! Message-ID made from that id and the referral's (`<obx_….ref_…@domain>`), so the
//! specialist's reply (`In-Reply-To`) names the referral it answers.

use std::{sync::Arc, time::Duration};

use refloop_app::{
    Clock, Confirmation, Connector, DeliveryOutcome, OutboxItem, Store,
    documents::{code_key, short_code},
    entry_for, is_stale,
};
use refloop_domain::{Purpose, Referral, TaskKind};

/// The HISP relay that carries Direct messages.
#[derive(Clone, Debug)]
pub struct DirectConfig {
    pub relay_host: String,
    pub relay_port: u16,
    /// `none` (a relay on a trusted network), `starttls` or `tls` (implicit, e.g. port 465).
    pub tls: String,
    pub username: String,
    pub password: String,
    /// Our Direct address.
    pub from: String,
}

impl DirectConfig {
    /// The SMTP transport to the relay: its TLS mode, port and credentials.
    pub(crate) fn transport(
        &self,
        timeout: Duration,
    ) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, lettre::transport::smtp::Error> {
        use lettre::{AsyncSmtpTransport, Tokio1Executor, transport::smtp::authentication::Credentials};
        let mut builder = match self.tls.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.relay_host)?,
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.relay_host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.relay_host),
        };
        builder = builder.port(self.relay_port).timeout(Some(timeout));
        if !self.username.is_empty() {
            builder = builder.credentials(Credentials::new(self.username.clone(), self.password.clone()));
        }
        Ok(builder.build())
    }
}

#[derive(Clone, Debug)]
pub struct FaxConfig {
    pub api_base: String,
    pub api_key: String,
    pub api_secret: String,
    pub practice: String,
    pub practice_phone: String,
}

/// Sends `note-request` outbox items by Direct or fax.
pub struct NoteRequests {
    cfg: FaxConfig,
    /// Fax is off when the API base is empty.
    fax: bool,
    direct: Option<DirectConfig>,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl NoteRequests {
    /// `cfg` names the practice (and the fax API when `api_base` is set); `direct` the relay.
    pub fn new(cfg: FaxConfig, direct: Option<DirectConfig>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client with the process's TLS provider");
        Self { fax: !cfg.api_base.is_empty(), cfg, direct, http, store, clock }
    }

    /// Sends the letter by Direct under a Message-ID made from the outbox item's id and the
    /// referral's, so a resend is the same message to the recipient and a reply names the
    /// referral. A relay that refused it for now (4xx) is
    /// retried; a time-out or a broken connection may have come after the relay took it, and is
    /// `Unconfirmed`.
    async fn by_direct(
        &self,
        relay: &DirectConfig,
        to: &str,
        item: &OutboxItem,
        referral: &Referral,
        content: Content,
    ) -> DeliveryOutcome {
        use lettre::{
            AsyncTransport, Message,
            message::{Attachment, MultiPart, SinglePart, header::ContentType},
        };
        let (Ok(from), Ok(to)) = (relay.from.parse(), to.parse()) else {
            return DeliveryOutcome::Permanent { error: "a Direct address is not a valid address".into() };
        };
        let domain = relay.from.rsplit('@').next().unwrap_or("refloop.invalid");
        let builder =
            Message::builder().message_id(Some(format!("<{}.{}@{domain}>", item.id, referral.id))).from(from).to(to);
        let message = match content {
            Content::Letter(letter) => builder
                .subject(format!("Request for consult note — referral {}", referral.id))
                .header(ContentType::TEXT_HTML)
                .body(letter),
            Content::Package { subject, text, zip } => {
                let zip_type = ContentType::parse("application/zip").expect("a valid media type");
                builder.subject(subject).multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text))
                        .singlepart(Attachment::new("360x-referral.zip".to_owned()).body(zip, zip_type)),
                )
            }
        };
        let Ok(message) = message else {
            return DeliveryOutcome::Permanent { error: "the Direct message could not be built".into() };
        };
        let Ok(transport) = relay.transport(Duration::from_secs(60)) else {
            return DeliveryOutcome::Permanent { error: "the Direct relay host is not valid".into() };
        };
        match transport.send(message).await {
            Ok(_) => DeliveryOutcome::Delivered,
            Err(e) if e.is_permanent() => {
                let code = e.status().map(|c| c.to_string()).unwrap_or_else(|| "no code".into());
                DeliveryOutcome::Permanent { error: format!("the Direct relay refused the message ({code})") }
            }
            Err(e) if e.is_transient() => {
                DeliveryOutcome::Retry { error: "the Direct relay could not take the message now".into() }
            }
            Err(_) => DeliveryOutcome::Unconfirmed {
                error: "the Direct relay's answer did not come (the message may have gone)".into(),
            },
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The request letter: our referral id and its short code, the patient's name and our id for
/// them, the dates.
pub fn request_letter(cfg: &FaxConfig, r: &Referral, patient_name: Option<&str>, specialist: &str) -> String {
    let day =
        |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()[..10].to_owned()).unwrap_or_else(|| "unknown".into());
    let visit = r.milestones.attended.or(r.appointment_at);
    format!(
        "<h1>Request for the consult note</h1>\
         <p>To: {specialist}<br>From: {practice}, phone {phone}</p>\
         <p>We referred a patient to you and have not received your consult note.</p>\
         <p><strong>Referral code: {code}</strong> — please write it on your fax cover sheet.</p>\
         <ul><li>Our referral: {id}</li><li>Patient: {patient} (our patient id {pid})</li>\
         <li>Specialty: {specialty}</li><li>Referred on: {ordered}</li><li>Visit: {visit}</li></ul>\
         <p>Please send the consult note to {practice}, quoting referral code {code}. Thank you.</p>",
        code = short_code(&r.id),
        specialist = escape(specialist),
        practice = escape(&cfg.practice),
        phone = escape(&cfg.practice_phone),
        id = r.id,
        patient = escape(patient_name.unwrap_or("(name not on file)")),
        pid = escape(r.patient_id.as_str()),
        specialty = r.specialty.as_ref().map(|s| s.as_str()).unwrap_or("not coded"),
        ordered = day(Some(r.ordered_at)),
        visit = day(visit),
    )
}

/// What a Direct message carries: the note request's letter, or a 360X XDM package.
enum Content {
    Letter(String),
    Package { subject: String, text: String, zip: Vec<u8> },
}

/// The ladder's rung of a note request: `rung-N` ends the key of the N-th (the first has none).
fn rung_of(item: &OutboxItem) -> u32 {
    item.key.rsplit(':').next().and_then(|s| s.strip_prefix("rung-")).and_then(|n| n.parse().ok()).unwrap_or(1).max(1)
}

/// Where a note request goes.
enum Route {
    Fhir { base: String, specialist: String, referral: Box<Referral> },
    Direct { relay: DirectConfig, address: String, referral: Box<Referral>, letter: String, specialist: String },
    Fax { number: String, letter: String, specialist: String },
}

impl NoteRequests {
    /// The item's referral, its patient and the directory.
    async fn read(
        &self,
        item: &OutboxItem,
    ) -> Result<(Referral, Option<refloop_app::Patient>, Vec<refloop_app::Specialist>), DeliveryOutcome> {
        let read = async {
            let r = self.store.referral(&item.referral_id).await?;
            let p = self.store.patient(&item.patient_id).await?;
            let d = self.store.specialists(None).await?;
            Ok::<_, refloop_app::StoreError>((r, p, d))
        };
        match read.await {
            Ok((Some(r), p, d)) => Ok((r, p, d)),
            _ => Err(DeliveryOutcome::Retry { error: "the database could not be read".into() }),
        }
    }

    /// Reads the referral, its patient and the directory, and picks Direct or fax (or says why
    /// neither can be used).
    async fn route(&self, item: &OutboxItem) -> Result<Route, DeliveryOutcome> {
        let (referral, patient, directory) = self.read(item).await?;
        let Some(entry) = entry_for(&directory, &referral) else {
            return Err(DeliveryOutcome::NeedsPerson {
                error: "the specialist is not in the directory: add them, then request the note".into(),
                task: TaskKind::VerifySpecialist,
            });
        };
        let now = self.clock.now();
        if is_stale(entry, now) {
            return Err(DeliveryOutcome::NeedsPerson {
                error: format!(
                    "verify specialist {}: contact data last verified {}, more than 90 days ago",
                    entry.id,
                    &entry.last_verified.to_string()[..10]
                ),
                task: TaskKind::VerifySpecialist,
            });
        }
        // The letter's short code names the referral from now on (a fax back that carries it
        // is matched without a person).
        let code = short_code(&referral.id);
        let keep_code = async {
            let mut tx = self.store.begin().await?;
            tx.put_key(&code_key(&code), &referral.id).await?;
            tx.commit().await
        };
        if keep_code.await.is_err() {
            return Err(DeliveryOutcome::Retry { error: "the database could not be written".into() });
        }
        let letter =
            request_letter(&self.cfg, &referral, patient.as_ref().and_then(|p| p.name.as_deref()), &entry.name);
        let specialist = entry.id.to_string();
        // The ways this specialist can be asked, in the ladder's order; the item's rung picks one.
        let mut ways = Vec::new();
        if let Some(base) = entry.fhir_base.as_deref() {
            ways.push(Route::Fhir {
                base: base.to_owned(),
                specialist: specialist.clone(),
                referral: Box::new(referral.clone()),
            });
        }
        if let (Some(relay), Some(address)) = (&self.direct, entry.direct_address.as_deref()) {
            let (relay, address) = (relay.clone(), address.to_owned());
            ways.push(Route::Direct {
                relay,
                address,
                referral: Box::new(referral.clone()),
                letter: letter.clone(),
                specialist: specialist.clone(),
            });
        }
        if let Some(number) = entry.fax.as_deref().filter(|_| self.fax) {
            ways.push(Route::Fax { number: number.to_owned(), letter, specialist: specialist.clone() });
        }
        let rung = rung_of(item);
        if ways.is_empty() {
            let error = if entry.direct_address.is_none() && entry.fax.is_none() && entry.fhir_base.is_none() {
                format!(
                    "interoperability gap: specialist {} has no FHIR endpoint, fax or Direct address; request the records by phone or mail",
                    entry.id
                )
            } else {
                format!(
                    "specialist {}: no configured channel (FHIR, Direct or fax) reaches them; request the note by hand",
                    entry.id
                )
            };
            return Err(DeliveryOutcome::NeedsPerson { error, task: TaskKind::RecordsRequest });
        }
        let count = ways.len();
        ways.into_iter().nth(rung as usize - 1).ok_or_else(|| DeliveryOutcome::NeedsPerson {
            error: format!(
                "the note request went unanswered by every way specialist {specialist} can be asked ({count}): request it by phone"
            ),
            task: TaskKind::RecordsRequest,
        })
    }

    /// Asks for the note on the specialist's FHIR endpoint: a Task in the style of Da Vinci
    /// CDex ("data-request-code", LOINC 11488-4 as the code wanted) about our referral, created
    /// once per outbox item (`If-None-Exist` on its key).
    async fn by_fhir(&self, base: &str, item: &OutboxItem, referral: &Referral) -> DeliveryOutcome {
        let cdex = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp";
        let task = serde_json::json!({
            "resourceType": "Task",
            "identifier": [{"system": "urn:refloop:outbox", "value": item.key}],
            "basedOn": [{"identifier": {"system": "urn:refloop:referral", "value": referral.id.as_str()}}],
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": cdex, "code": "data-request-code"}]},
            "for": {"identifier": {"system": "urn:refloop:patient", "value": referral.patient_id.as_str()}},
            "authoredOn": self.clock.now().to_string(),
            "requester": {"display": self.cfg.practice},
            "reasonCode": {"text": format!("Closing the referral loop: the consult note for our referral {} (code {})", referral.id, short_code(&referral.id))},
            "input": [{
                "type": {"coding": [{"system": cdex, "code": "data-code"}]},
                "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]},
            }],
        });
        let sent = self
            .http
            .post(format!("{}/Task", base.trim_end_matches('/')))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", format!("identifier=urn:refloop:outbox|{}", item.key))
            .json(&task)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Delivered,
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                // A conditional create: sending it again makes no second Task.
                DeliveryOutcome::Retry {
                    error: format!("the specialist's FHIR endpoint answered {}", r.status().as_u16()),
                }
            }
            Ok(r) => DeliveryOutcome::Permanent {
                error: format!("the specialist's FHIR endpoint refused the Task ({})", r.status().as_u16()),
            },
            Err(_) => DeliveryOutcome::Retry { error: "the specialist's FHIR endpoint could not be reached".into() },
        }
    }

    fn faxes_url(&self) -> String {
        format!("{}/v2.1/faxes", self.cfg.api_base.trim_end_matches('/'))
    }

    /// Faxes the letter, tagged with the outbox item's id so that the provider can later say
    /// whether it has it. A request that may have reached the provider (a time-out or reset
    /// after it was written, a 5xx) is `Unconfirmed`: it is looked up before any resend.
    async fn by_fax(&self, item: &OutboxItem, number: &str, letter: &str) -> DeliveryOutcome {
        let form = [("to", number), ("string_data", letter), ("string_data_type", "html"), (FAX_TAG, item.id.as_str())];
        let sent = self
            .http
            .post(self.faxes_url())
            .basic_auth(&self.cfg.api_key, Some(&self.cfg.api_secret))
            .form(&form)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Delivered,
            Ok(r) if r.status().as_u16() == 429 => {
                DeliveryOutcome::Retry { error: "the fax API answered 429 (too many requests)".into() }
            }
            Ok(r) if r.status().is_server_error() => {
                DeliveryOutcome::Unconfirmed { error: format!("the fax API answered {}", r.status().as_u16()) }
            }
            Ok(r) => DeliveryOutcome::Permanent {
                error: format!("the fax API refused the request ({})", r.status().as_u16()),
            },
            Err(e) if e.is_connect() => DeliveryOutcome::Retry { error: "the fax API could not be reached".into() },
            Err(_) => DeliveryOutcome::Unconfirmed { error: "the fax API did not answer in time".into() },
        }
    }

    /// Asks the fax provider for faxes tagged with the item's id since its first attempt.
    async fn fax_sent(&self, item: &OutboxItem) -> Confirmation {
        let since = item.first_attempt_at.unwrap_or(item.created_at);
        let tag = format!("tag[{FAX_TAG_KEY}]");
        let query = [(tag.as_str(), item.id.as_str()), ("created_after", &since.to_string())];
        let request = self.http.get(self.faxes_url()).basic_auth(&self.cfg.api_key, Some(&self.cfg.api_secret));
        let page = match crate::look_up(request, &query, "fax API").await {
            Ok(page) => page,
            Err(later) => return later,
        };
        match page["data"].as_array().and_then(|faxes| faxes.first()) {
            None => Confirmation::NotSent,
            Some(fax) if fax["status"] == "failure" => Confirmation::Sent(DeliveryOutcome::Permanent {
                error: "the fax provider could not deliver the fax".into(),
            }),
            Some(_) => Confirmation::Sent(DeliveryOutcome::Delivered),
        }
    }
}

impl NoteRequests {
    /// Sends the 360X referral request — an XDM package (`OMG^O19` and a C-CDA Referral Note)
    /// — or its cancellation (the `OMG^O19` with ORC `CA`) to the specialist's Direct address,
    /// under a Message-ID that names the referral.
    async fn referral_360x(&self, item: &OutboxItem) -> DeliveryOutcome {
        let Some(relay) = self.direct.clone() else {
            return DeliveryOutcome::NeedsPerson {
                error: "360X needs Direct ([direct] connector = \"smtp\"): send the referral by hand".into(),
                task: TaskKind::RecordsRequest,
            };
        };
        let (referral, patient, directory) = match self.read(item).await {
            Ok(read) => read,
            Err(outcome) => return outcome,
        };
        let cancel = item.purpose == Purpose::ReferralCancel;
        // A cancellation goes to whoever has the request, even if they stopped taking 360X.
        let Some(entry) = entry_for(&directory, &referral).filter(|e| e.accepts_360x || cancel) else {
            return DeliveryOutcome::Permanent { error: "the specialist no longer takes 360X referrals".into() };
        };
        let Some(address) = entry.direct_address.clone() else {
            return DeliveryOutcome::Permanent { error: "the specialist has no Direct address".into() };
        };
        let provider = match self.store.people(&[], std::slice::from_ref(&referral.referring_provider)).await {
            Ok(people) => people.provider(&referral.referring_provider).map(str::to_owned),
            Err(_) => return DeliveryOutcome::Retry { error: "the database could not be read".into() },
        };
        let request = refloop_direct::x360::Request {
            control_id: &item.id,
            referral: &referral,
            patient_name: patient.as_ref().and_then(|p| p.name.as_deref()),
            birth_date: patient.as_ref().and_then(|p| p.birth_date.as_deref()),
            provider_name: provider.as_deref(),
            practice: &self.cfg.practice,
            specialist: &entry.name,
            needed_by: item.body.as_deref().and_then(|b| b.parse().ok()),
            now: self.clock.now(),
            cancel,
        };
        let (subject, text) = if cancel {
            (
                format!("360X referral cancellation — referral {}", referral.id),
                format!(
                    "{} cancels its referral {} (360X). The cancellation (HL7 v2 OMG^O19, ORC CA) is in the attached XDM package.",
                    self.cfg.practice, referral.id
                ),
            )
        } else {
            (
                format!("360X referral request — referral {}", referral.id),
                format!(
                    "A referral from {} (360X). The referral request (HL7 v2 OMG^O19) and the Referral Note (C-CDA) are in the attached XDM package. Our referral: {}.",
                    self.cfg.practice, referral.id
                ),
            )
        };
        let content = Content::Package { subject, text, zip: refloop_direct::x360::package(&request) };
        let outcome = self.by_direct(&relay, &address, item, &referral, content).await;
        if outcome == DeliveryOutcome::Delivered {
            tracing::info!(message_id = %item.id, specialist = %entry.id, cancel, "360X message sent by Direct");
        }
        outcome
    }
}

/// The tag each fax carries: the outbox item's id, by which the provider is asked later.
const FAX_TAG_KEY: &str = "refloop_message";
const FAX_TAG: &str = "tags[refloop_message]";

#[async_trait::async_trait]
impl Connector for NoteRequests {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        if matches!(item.purpose, Purpose::ReferralRequest | Purpose::ReferralCancel) {
            return self.referral_360x(item).await;
        }
        match self.route(item).await {
            Err(outcome) => outcome,
            Ok(Route::Direct { relay, address, referral, letter, specialist }) => {
                let outcome = self.by_direct(&relay, &address, item, &referral, Content::Letter(letter)).await;
                if outcome == DeliveryOutcome::Delivered {
                    tracing::info!(message_id = %item.id, %specialist, "note request sent by Direct");
                }
                outcome
            }
            Ok(Route::Fax { number, letter, specialist }) => {
                let outcome = self.by_fax(item, &number, &letter).await;
                if outcome == DeliveryOutcome::Delivered {
                    tracing::info!(message_id = %item.id, %specialist, "note request faxed");
                }
                outcome
            }
            Ok(Route::Fhir { base, specialist, referral }) => {
                let outcome = self.by_fhir(&base, item, &referral).await;
                if outcome == DeliveryOutcome::Delivered {
                    tracing::info!(message_id = %item.id, %specialist, "note request sent as a FHIR Task");
                }
                outcome
            }
        }
    }

    /// Fax: the provider is asked by the item's tag. Direct (SMTP) offers no lookup: the
    /// message goes again under the same Message-ID, by which the recipient's system knows it
    /// for the same message.
    async fn confirm(&self, item: &OutboxItem) -> Confirmation {
        if matches!(item.purpose, Purpose::ReferralRequest | Purpose::ReferralCancel) {
            // Direct has no lookup: it goes again under the same Message-ID.
            return Confirmation::NotSent;
        }
        match self.route(item).await {
            Ok(Route::Fax { .. }) => self.fax_sent(item).await,
            // Direct goes again under the same Message-ID; a FHIR Task is a conditional create.
            Ok(Route::Direct { .. } | Route::Fhir { .. }) => Confirmation::NotSent,
            Err(DeliveryOutcome::Retry { error }) => Confirmation::Later { error },
            Err(_) => Confirmation::CannotTell {
                error: "the specialist's directory entry changed; check with their office whether the request arrived"
                    .into(),
            },
        }
    }
}
