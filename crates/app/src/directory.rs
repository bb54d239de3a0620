//! The specialist directory: where note requests go, and which contact data is stale.

use jiff::{SignedDuration, Timestamp};
use refloop_domain::{PhoneE164, Referral};

use crate::{Actor, AppError, Specialist, service::App};

/// Contact data not verified for this long is stale: listed, and not used for a note
/// request until someone verifies it.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_hours(90 * 24);

impl App {
    /// The directory; only the stale entries when `stale_only`.
    pub async fn specialists(&self, stale_only: bool) -> Result<Vec<Specialist>, AppError> {
        let before = stale_only.then(|| self.now() - STALE_AFTER);
        Ok(self.store.specialists(before).await?)
    }

    /// Adds or replaces a directory entry after checking it.
    pub async fn save_specialist(&self, actor: &Actor, s: Specialist) -> Result<Specialist, AppError> {
        if s.id.trim().is_empty() || s.id.len() > 64 {
            return Err(AppError::invalid("id", "1–64 characters"));
        }
        if s.name.trim().is_empty() {
            return Err(AppError::invalid("name", "required"));
        }
        if s.specialties.is_empty() {
            return Err(AppError::invalid("specialties", "at least one specialty code"));
        }
        for (field, number) in [("phone", &s.phone), ("fax", &s.fax)] {
            if let Some(n) = number
                && PhoneE164::parse(n).is_none()
            {
                return Err(AppError::invalid(field, "an E.164 number such as +15555550100"));
            }
        }
        if let Some(d) = &s.direct_address
            && !d.contains('@')
        {
            return Err(AppError::invalid("direct_address", "a Direct address such as dr@direct.example.org"));
        }
        if let Some(u) = &s.booking_url
            && !(u.starts_with("https://") && u.len() > 8 && !u.contains(char::is_whitespace))
        {
            return Err(AppError::invalid("booking_url", "an https:// link such as https://book.example.org/dr-lee"));
        }
        let https_or_loopback = |u: &str| {
            u.len() > 8
                && !u.contains(char::is_whitespace)
                && (u.starts_with("https://") || u.starts_with("http://127.0.0.1") || u.starts_with("http://localhost"))
        };
        if let Some(u) = &s.fhir_base
            && !https_or_loopback(u)
        {
            return Err(AppError::invalid("fhir_base", "an https:// FHIR base such as https://fhir.example.org/r4"));
        }
        if let Some(u) = &s.scheduling_manifest
            && !https_or_loopback(u)
        {
            return Err(AppError::invalid(
                "scheduling_manifest",
                "an https:// SMART Scheduling Links manifest such as https://slots.example.org/$bulk-publish",
            ));
        }
        if s.last_verified > self.now() {
            return Err(AppError::invalid("last_verified", "is in the future"));
        }
        let saved = Specialist { updated_at: self.now(), ..s };
        self.store.upsert_specialist(&saved).await?;
        self.store.audit(&self.audit_entry(actor, "write", "specialist", &saved.id)).await?;
        Ok(saved)
    }

    /// Someone confirmed the entry's contact data today.
    pub async fn verify_specialist(&self, actor: &Actor, id: &str) -> Result<Specialist, AppError> {
        let found = self.store.specialists(None).await?.into_iter().find(|s| s.id == id);
        let s = found.ok_or_else(|| AppError::NotFound { what: "specialist", id: id.to_owned() })?;
        self.save_specialist(actor, Specialist { last_verified: self.now(), ..s }).await
    }
}

/// The directory entry for a referral's specialist: same name (any case) and a matching
/// specialty when the referral has one.
pub fn entry_for<'a>(directory: &'a [Specialist], referral: &Referral) -> Option<&'a Specialist> {
    let name = referral.specialist.as_deref()?.trim();
    directory.iter().find(|s| {
        s.name.eq_ignore_ascii_case(name) && referral.specialty.as_ref().is_none_or(|want| s.specialties.contains(want))
    })
}

/// Whether an entry's contact data is stale at `now`.
pub fn is_stale(s: &Specialist, now: Timestamp) -> bool {
    s.last_verified < now - STALE_AFTER
}
