//! Links to book: a referral's short booking link (`/b/{code}`) that the stage-1 text carries
//! when the specialist has a booking page (their own, or one their SMART Scheduling Links
//! manifest gives). The code is a hash of the referral id — no patient data — and names the
//! referral through a referral key. Opening it records a signal on the timeline (never a
//! milestone) and sends the patient on to the booking page.

use refloop_domain::{Input, Referral, ReferralId};
use sha2::{Digest, Sha256};

use crate::{Actor, AppError, Store, StoreError, service::App};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A click again within this long is the same visit: not recorded twice.
const SAME_VISIT: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The referral's booking code: 12 Crockford base-32 characters (60 bits) of the SHA-256 of
/// `book:` and its id.
pub fn booking_code(id: &ReferralId) -> String {
    let digest = Sha256::digest(format!("book:{}", id.as_str()).as_bytes());
    let bits = digest[..8].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) >> 4;
    (0..12).rev().map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char).collect()
}

/// The referral key a booking code is kept under.
fn booking_key(code: &str) -> String {
    format!("book:{code}")
}

/// The short link for `referral`'s text, when its specialist has a booking page: keeps the
/// code's key (so the link names the referral) and answers `{base}/b/{code}`. `base` is
/// refloop's public URL; without one there is no link.
pub async fn booking_link(store: &dyn Store, referral: &Referral, base: &str) -> Result<Option<String>, StoreError> {
    let base = base.trim_end_matches('/');
    if base.is_empty() || referral.specialist.is_none() {
        return Ok(None);
    }
    let directory = store.specialists(None).await?;
    if crate::entry_for(&directory, referral).and_then(|e| e.booking_target()).is_none() {
        return Ok(None);
    }
    let code = booking_code(&referral.id);
    let mut tx = store.begin().await?;
    tx.put_key(&booking_key(&code), &referral.id).await?;
    tx.commit().await?;
    Ok(Some(format!("{base}/b/{code}")))
}

impl App {
    /// Someone opened the booking link `code`: where to send them (the specialist's booking
    /// page), after recording the click on the referral (once per visit). `None` for a code
    /// that names no referral, or a specialist who no longer has a booking page.
    pub async fn open_booking_link(&self, code: &str) -> Result<Option<String>, AppError> {
        let code = code.trim().to_ascii_lowercase();
        if code.len() != 12 || !code.bytes().all(|b| ALPHABET.contains(&b)) {
            return Ok(None);
        }
        // A read, no transaction: the link is public, and a crawler must not hold the writer.
        let Some(id) = self.store.referral_named_by(&booking_key(&code)).await? else { return Ok(None) };
        let Some(referral) = self.store.referral(&id).await? else { return Ok(None) };
        let directory = self.store.specialists(None).await?;
        let Some(target) = crate::entry_for(&directory, &referral).and_then(|e| e.booking_target()) else {
            return Ok(None);
        };
        let now = self.now();
        let seen = referral.progress.booking_link_opened.is_some_and(|at| now.duration_since(at) < SAME_VISIT);
        if !seen {
            // A click that cannot be recorded still takes the patient to the booking page.
            if let Err(e) = self.record(&Actor::system("booking-link"), &id, Input::BookingLinkOpened { at: now }).await
            {
                tracing::warn!(referral_id = %id, error = %e, "the booking link's click was not recorded");
            }
        }
        Ok(Some(target.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_code_is_short_stable_and_says_nothing_of_the_patient() {
        let id = ReferralId::parse("ref_01hzzzzzzzzzzzzzzzzzzzzzzz").unwrap();
        let code = booking_code(&id);
        assert_eq!(code.len(), 12);
        assert_eq!(code, booking_code(&id));
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(code, booking_code(&ReferralId::parse("ref_01hzzzzzzzzzzzzzzzzzzzzzzy").unwrap()));
    }
}
