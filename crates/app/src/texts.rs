//! The texts of messages to patients (SMS, portal): editable templates that never carry a
//! diagnosis or the reason for the referral.

use std::collections::BTreeMap;

use refloop_domain::Referral;

/// The patient texts in one language other than English.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Translation {
    pub notification: String,
    pub attendance: String,
    pub opt_out: String,
    pub opt_in: String,
    pub help: String,
}

impl Translation {
    /// The Spanish texts refloop ships. Review them with a qualified translator before
    /// go-live (Section 1557 asks for human-reviewed translations).
    pub fn spanish() -> Self {
        Self {
            notification: "{practice}: su médico le refirió a {specialty}{specialist}. Llame para hacer una cita; \
                           preguntas: {practice_phone}. Responda SI cuando tenga la cita. Responda PARAR para no \
                           recibir más mensajes."
                .to_owned(),
            attendance: "{practice}: ¿fue a su cita de {specialty}? Responda SI o NO. Responda PARAR para no recibir \
                         más mensajes."
                .to_owned(),
            opt_out:
                "{practice}: ya no recibirá mensajes de texto nuestros. Responda COMENZAR para recibirlos de nuevo."
                    .to_owned(),
            opt_in: "{practice}: los mensajes de texto están activos de nuevo. Responda PARAR para no recibir más."
                .to_owned(),
            help: "{practice}: recordatorios de su referido. Llame al {practice_phone} si necesita ayuda. Responda \
                   PARAR para no recibir más mensajes."
                .to_owned(),
        }
    }
}

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
    /// The same texts in other languages, by ISO 639-1 code (`es`); English is the fallback.
    pub translations: BTreeMap<String, Translation>,
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
            translations: BTreeMap::from([("es".to_owned(), Translation::spanish())]),
        }
    }

    /// Whether a patient whose preferred language is `language` (as the EHR wrote it) gets
    /// texts in it: English, or a language with a translation.
    pub fn speaks(&self, language: Option<&str>) -> bool {
        match language.and_then(refloop_domain::language_code) {
            None | Some("en") => true,
            Some(code) => self.translations.contains_key(code),
        }
    }

    /// The texts in the patient's preferred language (as the EHR wrote it: `SPA`, `es`,
    /// `Spanish` …) when there is a translation, else in English.
    pub fn in_language(&self, language: Option<&str>) -> SmsTexts {
        let mut out = self.clone();
        if let Some(t) = language.and_then(refloop_domain::language_code).and_then(|c| self.translations.get(c)) {
            out.notification = t.notification.clone();
            out.attendance = t.attendance.clone();
            out.opt_out_confirmation = t.opt_out.clone();
            out.opt_in_confirmation = t.opt_in.clone();
            out.help = t.help.clone();
        }
        out
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

    #[test]
    fn texts_go_in_the_patients_language_with_english_the_fallback() {
        let texts = SmsTexts::with_defaults("North Clinic", "+15555550100");
        for spanish in ["SPA", "es", "Spanish", "es-MX"] {
            let t = texts.in_language(Some(spanish));
            assert!(t.fill(&t.notification, None).contains("su médico le refirió"), "{spanish}");
            assert!(texts.speaks(Some(spanish)));
        }
        let t = texts.in_language(Some("VIE"));
        assert!(t.notification.starts_with("{practice}: your doctor"), "no Vietnamese texts: English");
        assert!(!texts.speaks(Some("VIE")) && texts.speaks(None) && texts.speaks(Some("Klingon")));
    }
}
