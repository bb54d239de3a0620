//! Reading rows the same way on both backends, and turning them into records.

use jiff::Timestamp;
use refloop_app::{
    AuditEntry, InboxItem, InboxStatus, OutboxItem, OutboxStatus, Patient, Role, SessionRecord, SessionStage,
    Specialist, StoreError, StoredEvent, Task, TaskStatus, TimerRow, TokenRecord, UserRecord,
};
use refloop_domain::{
    Channel, EventData, Network, PatientId, Purpose, Referral, ReferralId, Specialty, TaskKind, TimerKind,
};
use sqlx::Row;

/// Column access shared by `SqliteRow` and `PgRow`, so each record has one decoder.
pub(crate) trait Get {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, col: &str) -> Result<bool, StoreError>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

macro_rules! impl_get {
    ($row:ty) => {
        impl Get for $row {
            fn text(&self, col: &str) -> Result<String, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
            fn flag(&self, col: &str) -> Result<bool, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.try_get(col).map_err(corrupt)
            }
        }
    };
}

impl_get!(sqlx::sqlite::SqliteRow);
impl_get!(sqlx::postgres::PgRow);

/// A referral's sample slot, 0–7: stable for its id (FNV-1a), evenly spread.
pub(crate) fn sample_of(id: &str) -> i16 {
    let h = refloop_domain::fnv1a(refloop_domain::FNV_OFFSET, id.bytes());
    (h % 8) as i16
}

/// Text folded for search: lower case, accents removed ("García" → "garcia"), runs of
/// anything but letters and digits as one space.
pub(crate) fn fold(text: &str) -> String {
    use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

/// A patient name's search key: folded, after a leading space, so that " word" finds a
/// name with a word starting "word".
pub(crate) fn name_key(name: &str) -> String {
    format!(" {}", fold(name))
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(corrupt)
}

fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(ts).transpose()
}

fn enum_text<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(corrupt)
}

pub(crate) fn text_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("enums stored as text serialise to strings"),
    }
}

pub(crate) fn referral(row: &dyn Get) -> Result<Referral, StoreError> {
    serde_json::from_str(&row.text("doc")?).map_err(corrupt)
}

pub(crate) fn referral_doc(r: &Referral) -> String {
    serde_json::to_string(r).expect("a referral always serialises")
}

pub(crate) fn event(row: &dyn Get) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        referral_id: ReferralId::parse(&row.text("referral_id")?).map_err(corrupt)?,
        version: row.int("version")? as u64,
        data: serde_json::from_str::<EventData>(&row.text("data")?).map_err(corrupt)?,
        at: ts(row.int("at")?)?,
        recorded_at: ts(row.int("recorded_at")?)?,
        source: row.text("source")?,
    })
}

pub(crate) fn event_data(e: &StoredEvent) -> String {
    serde_json::to_string(&e.data).expect("event data always serialises")
}

pub(crate) fn timer(row: &dyn Get) -> Result<TimerRow, StoreError> {
    let kind = row.text("kind")?;
    Ok(TimerRow {
        id: row.text("id")?,
        referral_id: ReferralId::parse(&row.text("referral_id")?).map_err(corrupt)?,
        kind: TimerKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown timer kind {kind}")))?,
        due_at: ts(row.int("due_at")?)?,
        armed_version: row.int("armed_version")? as u64,
    })
}

pub(crate) fn outbox(row: &dyn Get) -> Result<OutboxItem, StoreError> {
    let status = row.text("status")?;
    Ok(OutboxItem {
        id: row.text("id")?,
        referral_id: ReferralId::parse(&row.text("referral_id")?).map_err(corrupt)?,
        patient_id: PatientId::parse(&row.text("patient_id")?).map_err(corrupt)?,
        channel: enum_text::<Channel>(&row.text("channel")?)?,
        purpose: enum_text::<Purpose>(&row.text("purpose")?)?,
        key: row.text("key")?,
        status: OutboxStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        attempts: row.int("attempts")? as u32,
        next_attempt_at: ts(row.int("next_attempt_at")?)?,
        created_at: ts(row.int("created_at")?)?,
        sent_at: opt_ts(row.opt_int("sent_at")?)?,
        last_error: row.opt_text("last_error")?,
        body: row.opt_text("body")?,
        first_attempt_at: opt_ts(row.opt_int("first_attempt_at")?)?,
        check_first: row.flag("check_first")?,
    })
}

pub(crate) fn task(row: &dyn Get) -> Result<Task, StoreError> {
    let kind = row.text("kind")?;
    let status = row.text("status")?;
    Ok(Task {
        id: row.text("id")?,
        referral_id: ReferralId::parse(&row.text("referral_id")?).map_err(corrupt)?,
        kind: TaskKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown task kind {kind}")))?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        assignee: row.opt_text("assignee")?,
        due_at: ts(row.int("due_at")?)?,
        created_at: ts(row.int("created_at")?)?,
        completed_at: opt_ts(row.opt_int("completed_at")?)?,
        outcome: row.opt_text("outcome")?,
        inbox_id: row.opt_text("inbox_id")?,
        attempts: u32::try_from(row.int("attempts")?).map_err(|_| corrupt("attempts out of range"))?,
        note: row.opt_text("note")?,
    })
}

pub(crate) fn task_log(row: &dyn Get) -> Result<refloop_app::TaskLogEntry, StoreError> {
    Ok(refloop_app::TaskLogEntry {
        task_id: row.text("task_id")?,
        referral_id: ReferralId::parse(&row.text("referral_id")?).map_err(corrupt)?,
        at: ts(row.int("at")?)?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        assignee: row.opt_text("assignee")?,
        outcome: row.opt_text("outcome")?,
        note: row.opt_text("note")?,
    })
}

pub(crate) fn patient(row: &dyn Get) -> Result<Patient, StoreError> {
    Ok(Patient {
        id: PatientId::parse(&row.text("id")?).map_err(corrupt)?,
        name: row.opt_text("name")?,
        birth_date: row.opt_text("birth_date")?,
        language: row.opt_text("language")?,
        phone: row.opt_text("phone")?,
        phone_text: row.opt_text("phone_text")?,
        sms_consent: row.flag("sms_consent")?,
        sms_opted_out: row.flag("sms_opted_out")?,
        time_zone: row.opt_text("time_zone")?,
        updated_at: ts(row.int("updated_at")?)?,
    })
}

pub(crate) fn specialist(row: &dyn Get) -> Result<Specialist, StoreError> {
    let specialties = row.text("specialties")?;
    Ok(Specialist {
        id: row.text("id")?,
        name: row.text("name")?,
        specialties: specialties
            .split(',')
            .filter(|s| !s.is_empty())
            .map(Specialty::parse)
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        network: enum_text::<Network>(&row.text("network")?)?,
        phone: row.opt_text("phone")?,
        fax: row.opt_text("fax")?,
        direct_address: row.opt_text("direct_address")?,
        accepts_360x: row.flag("accepts_360x")?,
        booking_url: row.opt_text("booking_url")?,
        fhir_base: row.opt_text("fhir_base")?,
        scheduling_manifest: row.opt_text("scheduling_manifest")?,
        manifest: row
            .opt_text("manifest_source")?
            .map(|source| -> Result<_, StoreError> {
                Ok(refloop_app::ManifestFound {
                    source,
                    link: row.opt_text("manifest_link")?,
                    phone: row.opt_text("manifest_phone")?,
                    modified: row.opt_text("manifest_modified")?,
                })
            })
            .transpose()?,
        last_verified: ts(row.int("last_verified")?)?,
        updated_at: ts(row.int("updated_at")?)?,
    })
}

pub(crate) fn token(row: &dyn Get) -> Result<TokenRecord, StoreError> {
    let role = row.text("role")?;
    Ok(TokenRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("unknown role {role}")))?,
        hash: row.text("hash")?,
        created_at: ts(row.int("created_at")?)?,
        expires_at: row.opt_int("expires_at")?.map(ts).transpose()?,
        last_used_at: row.opt_int("last_used_at")?.map(ts).transpose()?,
        revoked_at: row.opt_int("revoked_at")?.map(ts).transpose()?,
    })
}

pub(crate) fn user(row: &dyn Get) -> Result<UserRecord, StoreError> {
    let role = row.text("role")?;
    Ok(UserRecord {
        username: row.text("username")?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("unknown role {role}")))?,
        password_hash: row.text("password_hash")?,
        disabled: row.flag("disabled")?,
        created_at: ts(row.int("created_at")?)?,
        updated_at: ts(row.int("updated_at")?)?,
        failed_logins: u32::try_from(row.int("failed_logins")?).unwrap_or(u32::MAX),
        locked_until: row.opt_int("locked_until")?.map(ts).transpose()?,
        totp_secret: row.opt_text("totp_secret")?,
        totp_pending: row.opt_text("totp_pending")?,
        sso: row.text("source")? == "oidc",
    })
}

/// A rollup row; its `code` carries in progress (bit 12) and mature (bit 13) above the
/// stored code (see `reports.rs`).
pub(crate) fn rollup(row: &dyn Get) -> Result<refloop_app::RollupRow, StoreError> {
    let code = row.int("code")?;
    Ok(refloop_app::RollupRow {
        in_progress: code & 4096 != 0,
        mature: code & 8192 != 0,
        overdue: u8::try_from((code >> 14) & 3).map_err(corrupt)?,
        ..refloop_app::RollupRow::from_code(
            row.text("k")?,
            i16::try_from(code & 4095).map_err(corrupt)?,
            row.opt_text("leak_reason")?,
            u64::try_from(row.int("n")?).map_err(corrupt)?,
        )
    })
}

pub(crate) fn span(row: &dyn Get) -> Result<refloop_app::SpanRow, StoreError> {
    Ok(refloop_app::SpanRow {
        key: row.text("k")?,
        span: u8::try_from(row.int("span")?).map_err(corrupt)?,
        tenths: row.int("t")?,
        n: u64::try_from(row.int("n")?).map_err(corrupt)?,
        minutes: row.int("m")?,
    })
}

pub(crate) fn trend(row: &dyn Get) -> Result<(i64, u64, u64), StoreError> {
    let n = |c: &str| row.int(c).and_then(|v| u64::try_from(v).map_err(corrupt));
    Ok((row.int("b")?, n("n")?, n("closed")?))
}

pub(crate) fn fact(row: &dyn Get) -> Result<(String, refloop_domain::cms50::Fact), StoreError> {
    let fact = serde_json::from_str(&row.text("doc")?).map_err(corrupt)?;
    Ok((row.text("patient")?, fact))
}

pub(crate) fn session(row: &dyn Get) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        hash: row.text("hash")?,
        username: row.text("username")?,
        csrf: row.text("csrf")?,
        created_at: ts(row.int("created_at")?)?,
        last_seen_at: ts(row.int("last_seen_at")?)?,
        stage: {
            let stage = row.text("stage")?;
            SessionStage::parse(&stage).ok_or_else(|| corrupt(format!("unknown session stage {stage}")))?
        },
    })
}

pub(crate) fn inbox(row: &dyn Get) -> Result<InboxItem, StoreError> {
    let status = row.text("status")?;
    Ok(InboxItem {
        id: row.text("id")?,
        protocol: row.text("protocol")?,
        source: row.text("source")?,
        control_id: row.text("control_id")?,
        transport: row.text("transport")?,
        message_type: row.text("message_type")?,
        received_at: ts(row.int("received_at")?)?,
        raw: row.opt_bytes("raw")?.unwrap_or_default(),
        status: InboxStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        ack: row.opt_bytes("ack")?,
        application_ack: row.opt_bytes("application_ack")?,
        error: row.opt_text("error")?,
        referral_id: row.opt_text("referral_id")?.map(|r| ReferralId::parse(&r)).transpose().map_err(corrupt)?,
        attempts: row.int("attempts")? as u32,
        updated_at: ts(row.int("updated_at")?)?,
    })
}

pub(crate) fn audit(row: &dyn Get) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: ts(row.int("at")?)?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        resource_type: row.text("resource_type")?,
        resource_id: row.text("resource_id")?,
        remote: row.opt_text("remote")?,
    })
}

/// Maps a sqlx error to the port's error without leaking bound values.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::error!(error = %e, "the database cannot be reached");
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(d) if storage_fault(d.as_ref()).is_some() => {
            let (code, what) = storage_fault(d.as_ref()).unwrap_or_default();
            // The code and a fixed description only: the server's message may quote values.
            tracing::error!(code = %code, "the database cannot take writes: {what}");
            StoreError::Unavailable(format!("storage unavailable ({what}, code {code}); resend later"))
        }
        // PostgreSQL broke off this transaction to end a deadlock (40P01) or a serialization
        // conflict (40001): nothing of it was kept, and taking it again can succeed.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")) => StoreError::Conflict(
            format!("the database broke off a transaction that clashed with another ({})", d.message()),
        ),
        other => StoreError::Other(other.to_string()),
    }
}

/// A fault of the storage rather than of the statement: disk full, I/O error, a read-only
/// or corrupt file, a server that is shutting down or out of resources. Its code and what
/// it means.
fn storage_fault(d: &dyn sqlx::error::DatabaseError) -> Option<(String, &'static str)> {
    let code = d.code()?.into_owned();
    if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLite's extended codes keep the primary code in the low byte.
        let primary = code.parse::<i64>().ok()? & 0xff;
        let what = match primary {
            5 => "the database file is locked",
            7 => "out of memory",
            8 => "the database file is read-only",
            10 => "disk I/O error",
            11 => "the database file is corrupt",
            13 => "the disk is full",
            14 => "the database file cannot be opened",
            26 => "not a database file",
            _ => return None,
        };
        return Some((code, what));
    }
    let what = match code.get(..2)? {
        "08" => "the connection to the database failed",
        "53" => "the database server is out of resources (disk, memory or connections)",
        "57" => "the database server is shutting down or not accepting connections",
        "58" => "the database server had an I/O error",
        "XX" => "the database server had an internal error",
        _ => return None,
    };
    Some((code, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_slots_are_stable_and_even() {
        assert_eq!(sample_of("ref_01abc"), sample_of("ref_01abc"));
        let mut slots = [0u32; 8];
        for i in 0..8000 {
            slots[sample_of(&format!("ref_{i:08}")) as usize] += 1;
        }
        assert!(slots.iter().all(|n| (850..1150).contains(n)), "{slots:?}");
    }

    #[test]
    fn names_fold_to_lower_case_without_accents() {
        assert_eq!(name_key("José  García-Núñez"), " jose garcia nunez");
        assert_eq!(fold("ZOË"), "zoe");
        assert_eq!(fold("  O'Brien "), "o brien");
        assert_eq!(fold("Ångström"), "angstrom");
    }
}
