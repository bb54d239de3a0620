//! Patients' phone numbers as the EHR and staff write them — national (`(937)555-0101`) or
//! international (`+44 7400 123456`) — read with libphonenumber's data (`phonenumber`) in the
//! practice's region (`[practice] phone_region`).

use phonenumber::{Mode, Type, country, metadata::DATABASE};
use refloop_domain::PhoneE164;

/// A phone number as kept on a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneOnFile {
    /// E.164 when it can take a text; a landline in national format (a person can call it;
    /// the workflow cannot text it, so it opens a fix-contact task); what was written when it
    /// is no valid number.
    pub phone: String,
    /// As it came, for staff to see.
    pub text: String,
}

/// The region code `raw` names (`US`, `gb` …), upper-cased, when libphonenumber knows it.
pub fn phone_region(raw: &str) -> Option<String> {
    let id: country::Id = raw.trim().to_ascii_uppercase().parse().ok()?;
    Some(AsRef::<str>::as_ref(&id).to_owned())
}

/// Reads `raw` (national numbers in `region`). `None` when it is blank.
pub fn phone_on_file(raw: &str, region: &str) -> Option<PhoneOnFile> {
    let text = raw.trim();
    if text.is_empty() {
        return None;
    }
    let country = region.parse::<country::Id>().ok();
    let phone = match phonenumber::parse(country, text) {
        Ok(n) if n.is_valid() => match n.number_type(&DATABASE) {
            Type::FixedLine => n.format().mode(Mode::National).to_string(),
            _ => n.format().mode(Mode::E164).to_string(),
        },
        _ => text.to_owned(),
    };
    Some(PhoneOnFile { phone, text: text.to_owned() })
}

/// A number staff typed to fix a patient's contact: it must take a text.
pub fn textable(raw: &str, region: &str) -> Option<PhoneE164> {
    phone_on_file(raw, region).and_then(|p| PhoneE164::parse(&p.phone))
}

/// A preferred language as staff write it: its ISO 639-1 code when refloop knows the language
/// (`Spanish`, `spa`, `es-MX` → `es`), else the words as written (1–35 characters).
pub fn language_on_file(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 35 || t.chars().any(char::is_control) {
        return None;
    }
    Some(refloop_domain::language_code(t).map_or_else(|| t.to_owned(), str::to_owned))
}

impl crate::App {
    /// Staff record the preferred language of a referral's patient (audited as an update of the
    /// patient). Texts go out in it from then on when the practice has them in it.
    pub async fn set_patient_language(
        &self,
        actor: &crate::Actor,
        referral_id: &refloop_domain::ReferralId,
        language: &str,
    ) -> Result<String, crate::AppError> {
        use crate::AppError;
        let language = language_on_file(language)
            .ok_or_else(|| AppError::invalid("language", "a language such as Spanish, es or vie (1–35 characters)"))?;
        let not_found = || AppError::NotFound { what: "referral", id: referral_id.to_string() };
        // Lock order: the patient, then the referral (read first, unlocked, to learn whose it is).
        let patient_id = self.store.referral(referral_id).await?.ok_or_else(not_found)?.patient_id;
        let mut tx = self.store.begin().await?;
        let Some(old) = tx.lock_patient(&patient_id).await? else {
            return Err(AppError::NotFound { what: "patient", id: patient_id.to_string() });
        };
        let changed = crate::Patient { language: Some(language.clone()), updated_at: self.now(), ..old };
        tx.upsert_patient(&changed, crate::PatientKeep { consent: true, opt_out: true }).await?;
        tx.audit(&self.audit_entry(actor, "update", "patient", patient_id.as_str())).await?;
        tx.commit().await?;
        Ok(language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(raw: &str, region: &str) -> String {
        phone_on_file(raw, region).unwrap().phone
    }

    #[test]
    fn national_and_international_numbers_are_kept_as_e164_when_they_can_take_a_text() {
        assert_eq!(kept("(937)555-0101", "US"), "+19375550101");
        assert_eq!(kept("937.555.0101", "US"), "+19375550101");
        assert_eq!(kept("+1 (937) 555-0101", "GB"), "+19375550101", "a country code wins over the region");
        assert_eq!(kept("07400 123456", "GB"), "+447400123456");
        assert_eq!(kept("+44 7400 123456", "US"), "+447400123456");
        assert_eq!(phone_on_file("(937)555-0101", "US").unwrap().text, "(937)555-0101");
    }

    #[test]
    fn landlines_and_invalid_numbers_are_not_textable() {
        // A London landline: kept for a person to call, never texted.
        assert_eq!(kept("+44 20 7946 0000", "US"), "020 7946 0000");
        assert!(textable("+44 20 7946 0000", "US").is_none());
        for bad in ["555-0177", "12", "call the daughter", "+1 555"] {
            assert_eq!(kept(bad, "US"), bad, "kept as written for staff");
            assert!(textable(bad, "US").is_none(), "{bad}");
        }
        assert!(phone_on_file("  ", "US").is_none());
    }

    #[test]
    fn regions_are_country_codes_libphonenumber_knows() {
        assert_eq!(phone_region("us").as_deref(), Some("US"));
        assert_eq!(phone_region("GB").as_deref(), Some("GB"));
        assert_eq!(phone_region("XX"), None);
        assert_eq!(phone_region("USA"), None);
    }
}
