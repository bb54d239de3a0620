//! `import` and `dead-letters`: operator tools on the same write path as live traffic.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{config::Config, run};

pub async fn import_hl7(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let ingest = run::ingest(config, &app)?;
    let mut messages = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for m in refloop_hl7::split_batch(&bytes) {
            messages.push((file.display().to_string(), m));
        }
    }
    let bar = ProgressBar::new(messages.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
    let (mut duplicates, mut refused) = (0, Vec::new());
    let mut index = std::collections::HashMap::<&str, usize>::new();
    for (file, raw) in &messages {
        let n = index.entry(file).and_modify(|n| *n += 1).or_insert(1);
        let reply = ingest
            .receive(raw, &refloop_app::Via::file())
            .await
            .with_context(|| format!("storing message {n} of {file}"))?;
        if reply.duplicate {
            duplicates += 1;
        } else {
            *counts.entry(reply.status.as_str()).or_default() += 1;
        }
        if matches!(reply.status, refloop_app::InboxStatus::Rejected | refloop_app::InboxStatus::Dead) {
            // The inbox keeps the reason, written with ids only.
            let store: &dyn refloop_app::Store = app.store().as_ref();
            let kept = store.inbox_item(&reply.inbox_id).await?;
            let why = kept.as_ref().and_then(|m| m.error.clone()).unwrap_or_else(|| "refused".into());
            let control = kept.map(|m| m.control_id).unwrap_or_default();
            refused.push(format!(
                "{file}: message {n} (control id {control}, inbox {}): {} ({why})",
                reply.inbox_id,
                reply.status.as_str()
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "{} messages from {} files: {}{}",
        messages.len(),
        files.len(),
        if summary.is_empty() { "none".to_owned() } else { summary.join(", ") },
        if duplicates > 0 { format!(", {duplicates} already received") } else { String::new() }
    );
    refusals(&refused, "messages")
}

/// Prints each refused row or message (where, field, reason: never a value) and fails when
/// there was any, so that a script sees it.
fn refusals(refused: &[String], what: &str) -> anyhow::Result<()> {
    for r in refused {
        println!("  refused: {r}");
    }
    if refused.is_empty() { Ok(()) } else { anyhow::bail!("{} {what} refused (listed above)", refused.len()) }
}

/// Why a CSV row could not be read, naming the column and never the value.
fn csv_refusal(e: &csv::Error, headers: &csv::StringRecord) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let field = err.field().and_then(|f| headers.get(f as usize)).unwrap_or("row");
            let reason = match err.kind() {
                csv::DeserializeErrorKind::Message(m) if m.starts_with("missing field") => m.clone(),
                csv::DeserializeErrorKind::UnexpectedEndOfRow => "the row ends early".into(),
                csv::DeserializeErrorKind::InvalidUtf8(_) => "not UTF-8".into(),
                _ => "not readable as this column's type".into(),
            };
            format!("{field}: {reason}")
        }
        csv::ErrorKind::UnequalLengths { .. } => "row: wrong number of columns".into(),
        _ => "row: unreadable".into(),
    }
}

#[derive(serde::Deserialize)]
struct SpecialistRow {
    id: String,
    name: String,
    specialties: String,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    fax: Option<String>,
    #[serde(default)]
    direct_address: Option<String>,
    #[serde(default)]
    last_verified: Option<String>,
}

pub async fn import_specialists(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let actor = refloop_app::Actor::system("import");
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let headers = reader.headers().with_context(|| format!("reading {}", file.display()))?.clone();
    let (mut saved, mut bad) = (0usize, Vec::new());
    let name = file.display();
    for (i, record) in reader.deserialize::<SpecialistRow>().enumerate() {
        let line = i + 2;
        let row = match record {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("{name}: line {line}: {}", csv_refusal(&e, &headers)));
                continue;
            }
        };
        let last_verified = row.last_verified.map(|v| if v.len() == 10 { format!("{v}T00:00:00Z") } else { v });
        let body = refloop_web::SpecialistBody {
            name: row.name,
            specialties: row.specialties.split(';').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect(),
            network: row.network,
            phone: row.phone,
            fax: row.fax,
            direct_address: row.direct_address,
            accepts_360x: None,
            booking_url: None,
            fhir_base: None,
            scheduling_manifest: None,
            last_verified,
        };
        let result = match refloop_web::parse_specialist(row.id, body, app.now()) {
            Ok(s) => app.save_specialist(&actor, s).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("{}: {}", e.field.as_deref().unwrap_or("row"), e.message)),
        };
        match result {
            Ok(_) => saved += 1,
            Err(e) => bad.push(format!("{name}: line {line}: {e}")),
        }
    }
    println!("{saved} specialists saved, {} rows refused", bad.len());
    refusals(&bad, "rows")
}

/// Resources per transaction when importing NDJSON.
const NDJSON_CHUNK: usize = 200;

pub async fn import_fhir(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let fhir = run::fhir_ingest(config, &app)?;
    // Each unit of work: a whole JSON file, or a chunk of NDJSON lines; and where each of its
    // resources is (a line, or a Bundle entry), for the refusals.
    let mut units: Vec<(String, Vec<serde_json::Value>, Vec<String>, bool)> = Vec::new();
    let mut resources = 0usize;
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
        let ndjson = file.extension().is_some_and(|e| e == "ndjson")
            || text.trim_start().lines().nth(1).is_some_and(|l| l.trim_start().starts_with('{'));
        if ndjson {
            let mut lines = Vec::new();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let value = serde_json::from_str(line).with_context(|| format!("{name} line {}: not JSON", n + 1))?;
                lines.push((format!("line {}", n + 1), value));
            }
            resources += lines.len();
            for chunk in lines.chunks(NDJSON_CHUNK) {
                let (at, values) = chunk.iter().cloned().unzip();
                units.push((name.clone(), values, at, true));
            }
        } else {
            let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{name}: not JSON"))?;
            let n = value.get("entry").and_then(|e| e.as_array()).map_or(1, Vec::len);
            resources += n;
            let at = if value.get("entry").is_some() {
                (0..n).map(|i| format!("entry {i}")).collect()
            } else {
                vec!["the resource".to_owned()]
            };
            units.push((name, vec![value], at, false));
        }
    }
    let bar = ProgressBar::new(resources as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} resources {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut applied, mut refused) = (0usize, Vec::new());
    for (name, values, at, ndjson) in units {
        let n =
            if ndjson { values.len() } else { values[0].get("entry").and_then(|e| e.as_array()).map_or(1, Vec::len) };
        let reply = if ndjson {
            Ok(fhir.import_resources(values).await)
        } else {
            fhir.import(values.into_iter().next().expect("one value per JSON file")).await
        };
        match reply {
            Ok(r) => {
                applied += r.applied;
                refused.extend(fhir_refusals(&name, &at, &r.body));
            }
            Err(e) => refused.push(format!("{name}: {e}")),
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    println!("{resources} resources from {} files: {applied} applied, {} refused", files.len(), refused.len());
    refusals(&refused, "resources")
}

/// The refused entries of a FHIR reply (a batch-response Bundle, or one resource's
/// OperationOutcome): where, the status, and the outcome's words (which name elements by
/// FHIRPath, never values).
fn fhir_refusals(file: &str, at: &[String], body: &serde_json::Value) -> Vec<String> {
    let why = |outcome: &serde_json::Value| {
        let issue = &outcome["issue"][0];
        let text = issue["diagnostics"].as_str().unwrap_or("refused");
        match issue["expression"][0].as_str() {
            Some(path) => format!("{path}: {text}"),
            None => text.to_owned(),
        }
    };
    match body["entry"].as_array() {
        Some(entries) => entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let status = e["response"]["status"].as_str().unwrap_or_default();
                (!status.starts_with('2')).then(|| {
                    let place = at.get(i).cloned().unwrap_or_else(|| format!("entry {i}"));
                    format!("{file}: {place}: {status}: {}", why(&e["response"]["outcome"]))
                })
            })
            .collect(),
        None if body["resourceType"] == "OperationOutcome" && body["issue"][0]["severity"] != "information" => {
            vec![format!("{file}: {}", why(body))]
        }
        None => Vec::new(),
    }
}

pub async fn dead_letters_list(config: &Config) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let items = app.dead_letters(1000).await?;
    if items.is_empty() {
        println!("no dead letters");
    }
    for m in items {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            m.id,
            m.received_at,
            m.message_type,
            m.status.as_str(),
            m.attempts,
            m.error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn dead_letter_show(config: &Config, id: &str) -> anyhow::Result<()> {
    let store = run::open_store(config).await?;
    let store: &dyn refloop_app::Store = &store;
    let m = store.inbox_item(id).await?.with_context(|| format!("no inbound message {id}"))?;
    println!("id:           {}", m.id);
    println!("received:     {} over {}", m.received_at, m.transport);
    println!("from:         {} control id {}", m.source, m.control_id);
    println!("type:         {}", m.message_type);
    println!("status:       {} after {} attempt(s)", m.status.as_str(), m.attempts);
    println!("error:        {}", m.error.as_deref().unwrap_or("-"));
    println!("referral:     {}", m.referral_id.as_ref().map(|r| r.as_str()).unwrap_or("-"));
    println!("\n{}", String::from_utf8_lossy(&m.raw).replace('\r', "\n"));
    if let Some(ack) = &m.ack {
        println!("answered with:\n{}", String::from_utf8_lossy(ack).replace('\r', "\n"));
    }
    Ok(())
}

pub async fn dead_letters_retry(config: &Config, id: Option<&str>, all: bool) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let ids: Vec<String> = match (id, all) {
        (Some(id), _) => vec![id.to_owned()],
        (None, _) => app.dead_letters(1000).await?.into_iter().map(|m| m.id).collect(),
    };
    for id in ids {
        let m = app.retry_inbox(&id).await?;
        println!("{}\t{}\t{}", m.id, m.status.as_str(), m.error.as_deref().unwrap_or(""));
    }
    Ok(())
}

/// One baseline row as read; every cell text, checked when the row is turned into inputs.
#[derive(serde::Deserialize)]
struct HistoryRow {
    #[serde(default)]
    referral_id: Option<String>,
    patient_id: String,
    referring_provider: String,
    ordered_at: String,
    #[serde(default)]
    specialty: Option<String>,
    #[serde(default)]
    specialist: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    patient_notified_at: Option<String>,
    #[serde(default)]
    scheduled_at: Option<String>,
    #[serde(default)]
    appointment_at: Option<String>,
    #[serde(default)]
    attended_at: Option<String>,
    #[serde(default)]
    note_received_at: Option<String>,
    #[serde(default)]
    cancelled_at: Option<String>,
    #[serde(default)]
    closed_at: Option<String>,
    #[serde(default)]
    close_reason: Option<String>,
}

/// A row's referral and milestones, or `field: message` (never the cell's value).
/// A date alone is a local date in the practice's time zone `tz` (its start).
fn history_of(
    row: HistoryRow,
    file_key: &str,
    line: u64,
    tz: &jiff::tz::TimeZone,
) -> Result<(refloop_app::NewReferral, Vec<refloop_domain::Input>), String> {
    use refloop_domain::{Input, Network, Origin, PatientId, ProviderId, Specialty, State, Urgency};
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let time = |field: &str, v: Option<String>| {
        given(v).map(|v| refloop_app::period::bound(field, &v, tz, false).map_err(|e| e.to_string())).transpose()
    };
    let ordered_at = time("ordered_at", Some(row.ordered_at))?.ok_or("ordered_at: required")?;
    fn parsed<T>(field: &str, r: Result<T, refloop_domain::ParseError>) -> Result<T, String> {
        r.map_err(|e| format!("{field}: {}", e.message))
    }
    let req = refloop_app::NewReferral {
        patient_id: parsed("patient_id", PatientId::parse(&row.patient_id))?,
        patient: None,
        referring_provider: parsed("referring_provider", ProviderId::parse(&row.referring_provider))?,
        referring_provider_name: None,
        specialty: given(row.specialty).map(|s| parsed("specialty", Specialty::parse(&s))).transpose()?,
        specialist: given(row.specialist),
        urgency: given(row.urgency)
            .map(|s| parsed("urgency", Urgency::parse(&s)))
            .transpose()?
            .unwrap_or(Urgency::Routine),
        origin: Origin::PhysicianOrder,
        network: given(row.network)
            .map(|s| parsed("network", Network::parse(&s)))
            .transpose()?
            .unwrap_or(Network::Unknown),
        reason: None,
        ordered_at: Some(ordered_at),
        source_ids: vec![match given(row.referral_id) {
            Some(id) => format!("baseline:{id}"),
            None => format!("baseline:{file_key}:{line}"),
        }],
        historical: true,
    };
    let mut inputs = Vec::new();
    let milestone = |state, at, appointment_at| Input::Milestone { state, at, appointment_at, channel: None };
    if let Some(at) = time("patient_notified_at", row.patient_notified_at)? {
        inputs.push(milestone(State::PatientNotified, at, None));
    }
    let appointment = time("appointment_at", row.appointment_at)?;
    if let Some(at) = time("scheduled_at", row.scheduled_at)? {
        inputs.push(milestone(State::Scheduled, at, appointment));
    }
    if let Some(at) = time("attended_at", row.attended_at)? {
        inputs.push(milestone(State::Attended, at, None));
    }
    if let Some(at) = time("note_received_at", row.note_received_at)? {
        inputs.push(milestone(State::NoteReceived, at, None));
    }
    if let Some(at) = time("cancelled_at", row.cancelled_at)? {
        inputs.push(Input::Cancel { at, reason: given(row.close_reason.clone()) });
    } else if let Some(at) = time("closed_at", row.closed_at)? {
        let reason = given(row.close_reason).ok_or("close_reason: required with closed_at")?;
        inputs.push(Input::CloseIncomplete { at, reason });
    }
    Ok((req, inputs))
}

pub async fn import_csv(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let tz = app.policy().time_zone.clone();
    let actor = refloop_app::Actor::system("baseline-import");
    let (mut imported, mut present, mut bad) = (0usize, 0usize, Vec::new());
    for file in files {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(file)
            .with_context(|| format!("reading {}", file.display()))?;
        let headers = reader.headers()?.clone();
        for required in ["patient_id", "referring_provider", "ordered_at"] {
            if !headers.iter().any(|h| h == required) {
                anyhow::bail!("{}: the header row has no {required} column", file.display());
            }
        }
        let file_key = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let progress = ProgressBar::new_spinner();
        for record in reader.records() {
            progress.inc(1);
            let (line, outcome) = match record {
                Err(e) => (e.position().map_or(0, |p| p.line()), Err(csv_refusal(&e, &headers))),
                Ok(rec) => {
                    let line = rec.position().map_or(0, |p| p.line());
                    let row = rec.deserialize::<HistoryRow>(Some(&headers)).map_err(|e| csv_refusal(&e, &headers));
                    let outcome = match row.and_then(|r| history_of(r, &file_key, line, &tz)) {
                        Ok((req, inputs)) => app.import_history(&actor, req, inputs).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    (line, outcome)
                }
            };
            match outcome {
                Ok(refloop_app::HistoryOutcome::Imported(_)) => imported += 1,
                Ok(refloop_app::HistoryOutcome::AlreadyPresent(_)) => present += 1,
                Err(e) => bad.push(format!("{}: line {line}: {e}", file.display())),
            }
        }
        progress.finish_and_clear();
    }
    println!("{imported} referrals imported as history, {present} already present, {} rows refused", bad.len());
    refusals(&bad, "rows")
}

pub async fn simulate(p: &refloop_sim::Params, database: Option<&str>, json: bool, check: bool) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} simulated days").expect("a valid template"));
    let show = p.referrals_per_month * p.days > 50_000;
    let progress = |done: u64, total: u64| {
        if show {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let outcome = refloop_sim::simulate(p, database, &progress).await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_simulation(p, &outcome);
    }
    let outside: Vec<String> = outcome
        .checks
        .iter()
        .filter(|c| !c.within)
        .map(|c| format!("{} ({}): {} is outside {}-{}", c.figure, c.run, one_decimal(c.value), c.low, c.high))
        .collect();
    if check && !outside.is_empty() {
        anyhow::bail!("outside the seed article's bands:\n  {}", outside.join("\n  "));
    }
    Ok(())
}

fn one_decimal(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.1}"))
}

fn print_simulation(p: &refloop_sim::Params, outcome: &refloop_sim::Outcome) {
    let (b, w) = (&outcome.baseline, &outcome.workflow);
    let pct = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{:.1}%", r * 100.0));
    println!(
        "refloop simulate: seed {}, {} providers, {} referrals a month, {} days of orders ({} to {}), followed {} more days",
        p.seed,
        p.providers,
        p.referrals_per_month,
        p.days,
        &outcome.from.to_string()[..10],
        &outcome.to.to_string()[..10],
        p.follow_days
    );
    println!("{:<38} {:>12} {:>12}", "", "baseline", "workflow");
    let row = |name: &str, a: String, b: String| println!("{name:<38} {a:>12} {b:>12}");
    row("tracked referrals", b.referrals.to_string(), w.referrals.to_string());
    row("median days order to note", one_decimal(b.median_days_to_note), one_decimal(w.median_days_to_note));
    row(
        "unscheduled at the scheduling window",
        b.unscheduled_at_window.to_string(),
        w.unscheduled_at_window.to_string(),
    );
    row(
        "  scheduled after an escalation",
        pct(b.scheduled_after_escalation_rate),
        pct(w.scheduled_after_escalation_rate),
    );
    row("chases by hand", b.chases_by_hand.to_string(), w.chases_by_hand.to_string());
    row("staff tasks opened", b.tasks_opened.to_string(), w.tasks_opened.to_string());
    let kinds: std::collections::BTreeSet<&str> =
        b.tasks_by_kind.keys().chain(w.tasks_by_kind.keys()).copied().collect();
    for k in kinds {
        let n = |r: &refloop_sim::RunResult| r.tasks_by_kind.get(k).copied().unwrap_or(0).to_string();
        row(&format!("  {k}"), n(b), n(w));
    }
    row("messages sent", b.messages_sent.to_string(), w.messages_sent.to_string());
    if p.booking_links {
        row("  booked from the link in the text", "–".into(), w.booked_from_link.to_string());
    }
    if p.languages {
        row("  booked after texts in their language", "–".into(), w.booked_in_language.to_string());
    }
    let stages: std::collections::BTreeSet<&str> =
        b.leakage_by_stage.keys().chain(w.leakage_by_stage.keys()).copied().collect();
    for s in stages {
        let n = |r: &refloop_sim::RunResult| r.leakage_by_stage.get(s).copied().unwrap_or(0).to_string();
        row(&format!("leaked: {s}"), n(b), n(w));
    }
    let reasons: std::collections::BTreeSet<&String> =
        b.leakage_by_reason.keys().chain(w.leakage_by_reason.keys()).collect();
    for s in reasons {
        let n = |r: &refloop_sim::RunResult| r.leakage_by_reason.get(s).copied().unwrap_or(0).to_string();
        row(&format!("  because: {s}"), n(b), n(w));
    }
    println!("\nThe seed article's before/after table (a figure outside its band is marked OUTSIDE):");
    println!("{:<38} {:>22} {:>22}", "", "baseline", "workflow");
    for pair in outcome.checks.chunks(2) {
        let cell = |c: &refloop_sim::Check| {
            let mark = if c.within { "" } else { " OUTSIDE" };
            format!("{}{mark} ({}-{})", one_decimal(c.value), c.low, c.high)
        };
        println!("{:<38} {:>22} {:>22}", pair[0].figure, cell(&pair[0]), pair.get(1).map(cell).unwrap_or_default());
    }
    for band in &refloop_sim::BANDS {
        println!("  {}: {}", band.figure, band.source);
    }
    println!("\nAssumptions (name = value: source):");
    for a in p.assumptions() {
        println!("  {} = {}: {}", a.name, a.value, a.source);
    }
}

/// Each outbound channel's mode and, for those that reach someone, its last success and last
/// failure from the database's outbox (when the database exists and answers within 5 s;
/// `check-config` never creates one).
pub async fn print_channels(config: &Config) -> anyhow::Result<()> {
    let url = &config.database.url;
    let activity = if crate::config::sqlite_path(url).is_some_and(|path| !std::path::Path::new(path).exists()) {
        Err("the database does not exist yet".to_owned())
    } else {
        let read = async {
            let store = refloop_store::SqlStore::connect(url).await?;
            refloop_app::store::OutboxStore::channel_activity(&store).await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the database did not answer within 5 s".to_owned()),
        }
    };
    println!("# channels (live: reaches people; off: only logs, nothing it sends counts as sent)");
    let at = |t: Option<jiff::Timestamp>| t.map_or_else(|| "never".to_owned(), |t| t.to_string());
    for (channel, live) in config.live_channels()? {
        let line = if !live {
            let needed = refloop_app::ChannelStatus::needed_by_workflow(channel);
            if needed { "off    (the workflow falls back to staff tasks)".to_owned() } else { "off".to_owned() }
        } else {
            match &activity {
                Ok(rows) => {
                    let row = rows.iter().find(|r| r.channel == channel.as_str()).cloned().unwrap_or_default();
                    format!("live   last success {}, last failure {}", at(row.last_success), at(row.last_failure))
                }
                Err(why) => format!("live   last activity unknown: {why}"),
            }
        };
        println!("#   {:<13} {line}", channel.as_str());
    }
    Ok(())
}
