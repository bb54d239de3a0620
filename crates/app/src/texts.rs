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
    /// Stage 1's second text (when `[sms] reminder_after` is set); empty: the notification.
    #[serde(default)]
    pub reminder: String,
    /// Specialty codes in this language (`cardiology = "cardiología"`), for `{specialty}`.
    #[serde(default)]
    pub specialties: BTreeMap<String, String>,
}

impl Translation {
    /// The Spanish texts refloop ships. Review them with a qualified translator before
    /// go-live (Section 1557 asks for human-reviewed translations).
    pub fn spanish() -> Self {
        Self {
            notification: "{practice}: su médico le refirió a {specialty}{specialist}. Llame para hacer una \
                           cita[ o haga su cita en línea: {booking_link}]; preguntas: {practice_phone}. Responda SI \
                           cuando tenga la cita. Responda PARAR para no recibir más mensajes."
                .to_owned(),
            reminder: "{practice}: recuerde hacer su cita de {specialty}{specialist}[ en línea: {booking_link}]; \
                       preguntas: {practice_phone}. Responda SI cuando tenga la cita. Responda PARAR para no recibir \
                       más mensajes."
                .to_owned(),
            specialties: spanish_specialties(),
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

/// Spanish names of the common specialty codes.
fn spanish_specialties() -> BTreeMap<String, String> {
    [
        ("allergy", "alergología"),
        ("cardiology", "cardiología"),
        ("dermatology", "dermatología"),
        ("endocrinology", "endocrinología"),
        ("gastroenterology", "gastroenterología"),
        ("hematology", "hematología"),
        ("nephrology", "nefrología"),
        ("neurology", "neurología"),
        ("obstetrics-gynecology", "ginecología y obstetricia"),
        ("oncology", "oncología"),
        ("ophthalmology", "oftalmología"),
        ("orthopedics", "ortopedia"),
        ("otolaryngology", "otorrinolaringología"),
        ("psychiatry", "psiquiatría"),
        ("pulmonology", "neumología"),
        ("rheumatology", "reumatología"),
        ("urology", "urología"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The message texts. `{practice}`, `{practice_phone}`, `{specialty}`, `{specialist}` and
/// `{booking_link}` are filled in; a part in square brackets that holds `{booking_link}` is
/// kept only when there is a link. Nothing about the diagnosis or the reason for the referral
/// is ever included.
#[derive(Clone, Debug)]
pub struct SmsTexts {
    pub practice: String,
    pub practice_phone: String,
    pub notification: String,
    /// Stage 1's second text to a patient who has neither answered nor booked.
    pub reminder: String,
    pub attendance: String,
    pub opt_out_confirmation: String,
    pub opt_in_confirmation: String,
    pub help: String,
    /// The same texts in other languages, by ISO 639-1 code (`es`); English is the fallback.
    pub translations: BTreeMap<String, Translation>,
    /// Specialty codes as these texts name them (a translation's; empty in English: the code
    /// with spaces for dashes).
    pub specialty_names: BTreeMap<String, String>,
}

impl SmsTexts {
    pub fn with_defaults(practice: &str, practice_phone: &str) -> Self {
        Self {
            practice: practice.to_owned(),
            practice_phone: practice_phone.to_owned(),
            notification: "{practice}: your doctor referred you to {specialty}{specialist}. Please call to book a \
                           visit[ or book online: {booking_link}]; questions: {practice_phone}. Reply YES when \
                           booked. Reply STOP to opt out."
                .to_owned(),
            reminder: "{practice}: a reminder to book your {specialty} visit{specialist}[ online: {booking_link}]; \
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
            specialty_names: BTreeMap::new(),
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
            out.reminder = if t.reminder.trim().is_empty() { t.notification.clone() } else { t.reminder.clone() };
            out.specialty_names = t.specialties.clone();
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
            refloop_domain::Purpose::Reminder => Some(&self.reminder),
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
        self.fill_with(template, referral, None)
    }

    /// [`SmsTexts::fill`] with the referral's booking link, when it has one.
    pub fn fill_with(&self, template: &str, referral: Option<&Referral>, booking_link: Option<&str>) -> String {
        let specialty = referral
            .and_then(|r| r.specialty.as_ref())
            .map(|s| match self.specialty_names.get(s.as_str()) {
                Some(name) => plain(name),
                None => plain(&s.as_str().replace('-', " ")),
            })
            .unwrap_or_else(|| "a specialist".to_owned());
        let specialist = referral
            .and_then(|r| r.specialist.as_deref())
            .map(plain)
            .filter(|s| !s.is_empty())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        with_link(template, booking_link)
            .replace("{practice}", &self.practice)
            .replace("{practice_phone}", &self.practice_phone)
            .replace("{specialty}", &specialty)
            .replace("{specialist}", &specialist)
    }
}

/// `template` with each `[…{booking_link}…]` part kept (brackets dropped, the link in) when
/// there is a link, else left out.
fn with_link(template: &str, link: Option<&str>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let part = &rest[open + 1..close];
        out.push_str(&rest[..open]);
        if part.contains("{booking_link}") {
            if let Some(link) = link {
                out.push_str(&part.replace("{booking_link}", link));
            }
        } else {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.replace("{booking_link}", link.unwrap_or_default())
}

impl crate::App {
    /// The same app with the practice's texts to patients.
    pub fn with_texts(mut self, texts: SmsTexts) -> Self {
        self.texts = std::sync::Arc::new(texts);
        self
    }

    /// The practice's texts to patients.
    pub fn texts(&self) -> &SmsTexts {
        &self.texts
    }

    /// What a phone task for a patient whose preferred language is `language` must say: that
    /// the caller needs an interpreter, when the practice has no texts in that language.
    pub fn interpreter_for(&self, language: Option<&str>) -> Option<String> {
        let language = language.filter(|l| !l.trim().is_empty())?;
        (!self.texts.speaks(Some(language)))
            .then(|| format!("needs an interpreter: {}", refloop_domain::language_name(language)))
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
    fn the_booking_link_part_is_there_only_with_a_link() {
        let texts = SmsTexts::with_defaults("North Clinic", "+15555550100");
        let with = texts.fill_with(&texts.notification, None, Some("https://r.example/b/abc"));
        assert!(
            with.contains("Please call to book a visit or book online: https://r.example/b/abc; questions"),
            "{with}"
        );
        let without = texts.fill(&texts.notification, None);
        assert!(without.contains("Please call to book a visit; questions") && !without.contains('['), "{without}");
        assert_eq!(with_link("a [b] c[ {booking_link}] d", None), "a [b] c d", "other brackets stay");
        let es = texts.in_language(Some("es"));
        // A cardiology referral to "sp-heart".
        let r: Referral = serde_json::from_str(include_str!("../../domain/tests/golden/referral.json")).unwrap();
        let text = es.fill_with(&es.reminder, Some(&r), Some("https://r.example/b/abc"));
        assert!(text.contains("cita de cardiología (sp-heart) en línea: https://r.example/b/abc;"), "{text}");
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
