//! The texts of messages to patients (SMS, portal): editable templates that never carry a
//! diagnosis or the reason for the referral.

use refloop_domain::Referral;

/// The message texts. `{practice}`, `{practice_phone}`, `{specialty}`, `{specialist}` are
/// filled in; nothing about the diagnosis or the reason for the referral is ever included.
#[derive(Clone, Debug)]
pub struct SmsTexts {
    pub practice: String,
    pub practice_phone: String,
    pub notification: String,
    pub attendance: String,
    pub opt_out_confirmation: String,
    pub opt_in_confirmation: String,
    pub help: String,
}

impl SmsTexts {
    pub fn with_defaults(practice: &str, practice_phone: &str) -> Self {
        Self {
            practice: practice.to_owned(),
            practice_phone: practice_phone.to_owned(),
            notification:
                "{practice}: your doctor referred you to {specialty}{specialist}. Please call to book a visit; \
                           questions: {practice_phone}. Reply YES when booked. Reply STOP to opt out."
                    .to_owned(),
            attendance:
                "{practice}: did you go to your {specialty} appointment? Reply YES or NO. Reply STOP to opt out."
                    .to_owned(),
            opt_out_confirmation: "{practice}: you will get no more text messages from us. Reply START to resume."
                .to_owned(),
            opt_in_confirmation: "{practice}: text messages are on again. Reply STOP to opt out.".to_owned(),
            help: "{practice}: referral reminders. Call {practice_phone} for help. Reply STOP to opt out.".to_owned(),
        }
    }

    /// Fills a template; a referral's specialty and specialist when given.
    /// The template the workflow's SMS of `purpose` is written from (none for a staff reply,
    /// whose text is its own).
    pub fn template(&self, purpose: refloop_domain::Purpose) -> Option<&str> {
        match purpose {
            refloop_domain::Purpose::PatientNotification => Some(&self.notification),
            refloop_domain::Purpose::AttendanceQuestion => Some(&self.attendance),
            _ => None,
        }
    }

    /// The text of an outbound SMS as the patient got it.
    pub fn text_of(&self, item: &crate::OutboxItem, referral: Option<&Referral>) -> Option<String> {
        item.body.clone().or_else(|| self.template(item.purpose).map(|t| self.fill(t, referral)))
    }

    /// The template with the referral's details filled in. A filled-in value came from an
    /// EHR's message, so it goes in as plain words: no markup, no control characters, one
    /// line, at most [`FILLED_MAX`] characters.
    pub fn fill(&self, template: &str, referral: Option<&Referral>) -> String {
        let specialty = referral
            .and_then(|r| r.specialty.as_ref())
            .map(|s| plain(&s.as_str().replace('-', " ")))
            .unwrap_or_else(|| "a specialist".to_owned());
        let specialist = referral
            .and_then(|r| r.specialist.as_deref())
            .map(plain)
            .filter(|s| !s.is_empty())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        template
            .replace("{practice}", &self.practice)
            .replace("{practice_phone}", &self.practice_phone)
            .replace("{specialty}", &specialty)
            .replace("{specialist}", &specialist)
    }
}

/// The most characters a filled-in value adds to a text.
pub const FILLED_MAX: usize = 60;

/// `raw` as plain words: markup (`<…>`) and control characters dropped, runs of spaces made
/// one, cut at [`FILLED_MAX`] characters.
fn plain(raw: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.trim().chars().take(FILLED_MAX).collect::<String>().trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_in_values_are_plain_words() {
        assert_eq!(
            plain("Dr <b>Ada</b>\r\nLovelace\u{7}  <a href='http://evil.example'>click</a>"),
            "Dr Ada Lovelace click"
        );
        assert_eq!(plain("<script>x"), "x");
        assert_eq!(plain("Dr Ada <unclosed"), "Dr Ada");
        assert_eq!(plain(&"a".repeat(200)).chars().count(), FILLED_MAX);
    }

    #[test]
    fn texts_carry_no_reason_for_the_referral() {
        let texts = SmsTexts::with_defaults("North Clinic", "+15555550100");
        let body = texts.fill(&texts.notification, None);
        assert!(body.starts_with("North Clinic: your doctor referred you to a specialist."), "{body}");
        assert!(body.contains("Reply STOP"));
    }
}
