//! What a patient's SMS reply means. Carrier keywords (CTIA) first, then the replies the
//! workflow asks for; anything else is for a person to read.

/// The meaning of an inbound SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsReply {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: no more SMS.
    OptOut,
    /// START, UNSTOP (and YES right after an opt-out, as carriers treat it): SMS again.
    OptIn,
    /// HELP, INFO: who we are and how to stop.
    Help,
    /// YES, Y, BOOKED, SCHEDULED, DONE …: the patient says it is done (booked, or attended
    /// when asked whether they attended).
    Yes,
    /// NO, N: the patient says it is not.
    No,
    /// Anything else: the staff inbox, never an automated answer.
    Other,
}

/// Classifies a reply: case and surrounding punctuation ignored, only a whole-message
/// keyword counts ("stop calling me" is for a person to read).
pub fn classify_sms(body: &str) -> SmsReply {
    classify_sms_in(body).0
}

/// The whole message as one upper-case keyword (`¡Sí!` → `SÍ`).
fn keyword(body: &str) -> String {
    body.trim().trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace() || "¡¿".contains(c)).to_uppercase()
}

/// [`classify_sms`], and the language (ISO 639-1) the keyword belongs to when it is not
/// English: a reply in Spanish (`PARAR`, `ALTO`, `SÍ`, `AYUDA` …) is answered in Spanish.
pub fn classify_sms_in(body: &str) -> (SmsReply, Option<&'static str>) {
    match keyword(body).as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => (SmsReply::OptOut, None),
        "PARAR" | "ALTO" | "PARE" | "CANCELAR" | "BAJA" => (SmsReply::OptOut, Some("es")),
        "START" | "UNSTOP" => (SmsReply::OptIn, None),
        "COMENZAR" | "INICIAR" | "REANUDAR" => (SmsReply::OptIn, Some("es")),
        "HELP" | "INFO" => (SmsReply::Help, None),
        "AYUDA" => (SmsReply::Help, Some("es")),
        "YES" | "Y" | "YEP" | "YEAH" | "BOOKED" | "SCHEDULED" | "DONE" | "I DID" | "YES I DID" => (SmsReply::Yes, None),
        "SI" | "SÍ" | "SI FUI" | "SÍ FUI" | "YA" | "LISTO" | "HECHO" | "AGENDADA" | "AGENDADO" => {
            (SmsReply::Yes, Some("es"))
        }
        "NO" | "N" | "NOPE" | "NOT YET" => (SmsReply::No, None),
        "TODAVÍA NO" | "TODAVIA NO" | "AÚN NO" | "AUN NO" => (SmsReply::No, Some("es")),
        _ => (SmsReply::Other, None),
    }
}

/// A patient's preferred language as an ISO 639-1 code, from what an EHR writes: the code
/// itself (`es`, `es-MX`), an ISO 639-2 / HL7 table 0296 code (`SPA`), or the name in English or
/// in the language (`Spanish`, `Español`). `None` when it is none of the languages known here.
pub fn language_code(raw: &str) -> Option<&'static str> {
    let lower = raw.trim().to_lowercase();
    let base = lower.split(['-', '_']).next().unwrap_or_default();
    LANGUAGES.iter().find(|(_, names)| names.contains(&base) || names.contains(&lower.as_str())).map(|(code, _)| *code)
}

/// The English name of a preferred language as the EHR wrote it (`SPA` → `Spanish`); the text
/// itself when it names no language refloop knows.
pub fn language_name(raw: &str) -> String {
    match language_code(raw) {
        Some(code) => NAMES.iter().find(|(c, _)| *c == code).map_or(code, |(_, n)| n).to_owned(),
        None => raw.trim().to_owned(),
    }
}

const NAMES: &[(&str, &str)] = &[
    ("en", "English"),
    ("es", "Spanish"),
    ("zh", "Chinese"),
    ("vi", "Vietnamese"),
    ("ko", "Korean"),
    ("ru", "Russian"),
    ("ar", "Arabic"),
    ("fr", "French"),
    ("ht", "Haitian Creole"),
    ("pt", "Portuguese"),
    ("tl", "Tagalog"),
    ("pl", "Polish"),
    ("de", "German"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("so", "Somali"),
    ("am", "Amharic"),
    ("ne", "Nepali"),
    ("uk", "Ukrainian"),
    ("fa", "Persian"),
];

/// ISO 639-1 code → the forms it is written in (639-1, 639-2/B and /T, English and own names).
const LANGUAGES: &[(&str, &[&str])] = &[
    ("en", &["en", "eng", "english"]),
    ("es", &["es", "spa", "spanish", "español", "espanol", "castellano"]),
    ("zh", &["zh", "chi", "zho", "chinese", "mandarin", "cantonese", "中文"]),
    ("vi", &["vi", "vie", "vietnamese", "tiếng việt"]),
    ("ko", &["ko", "kor", "korean", "한국어"]),
    ("ru", &["ru", "rus", "russian", "русский"]),
    ("ar", &["ar", "ara", "arabic", "العربية"]),
    ("fr", &["fr", "fre", "fra", "french", "français", "francais"]),
    ("ht", &["ht", "hat", "haitian", "haitian creole", "kreyòl", "kreyol"]),
    ("pt", &["pt", "por", "portuguese", "português", "portugues"]),
    ("tl", &["tl", "tgl", "tagalog", "filipino", "fil"]),
    ("pl", &["pl", "pol", "polish", "polski"]),
    ("de", &["de", "ger", "deu", "german", "deutsch"]),
    ("it", &["it", "ita", "italian", "italiano"]),
    ("ja", &["ja", "jpn", "japanese", "日本語"]),
    ("so", &["so", "som", "somali"]),
    ("am", &["am", "amh", "amharic"]),
    ("ne", &["ne", "nep", "nepali"]),
    ("uk", &["uk", "ukr", "ukrainian"]),
    ("fa", &["fa", "per", "fas", "persian", "farsi"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        for (text, want) in [
            ("STOP", SmsReply::OptOut),
            (" stop. ", SmsReply::OptOut),
            ("Unsubscribe", SmsReply::OptOut),
            ("quit!", SmsReply::OptOut),
            ("start", SmsReply::OptIn),
            ("UNSTOP", SmsReply::OptIn),
            ("help", SmsReply::Help),
            ("Yes", SmsReply::Yes),
            ("booked!", SmsReply::Yes),
            ("no", SmsReply::No),
            ("PARAR", SmsReply::OptOut),
            ("alto", SmsReply::OptOut),
            ("¡Sí!", SmsReply::Yes),
            ("si", SmsReply::Yes),
            ("Ayuda", SmsReply::Help),
            ("stop calling me", SmsReply::Other),
            ("can I come on Tuesday?", SmsReply::Other),
            ("", SmsReply::Other),
        ] {
            assert_eq!(classify_sms(text), want, "{text:?}");
        }
        assert_eq!(classify_sms_in("parar"), (SmsReply::OptOut, Some("es")));
        assert_eq!(classify_sms_in("STOP"), (SmsReply::OptOut, None));
        assert_eq!(language_name("SPA"), "Spanish");
        assert_eq!(language_name("vie"), "Vietnamese");
        assert_eq!(language_name(" Klingon "), "Klingon");
        assert!(LANGUAGES.iter().all(|(c, _)| NAMES.iter().any(|(n, _)| n == c)), "every language has a name");
    }

    #[test]
    fn languages_are_read_from_codes_and_names() {
        for (raw, want) in [
            ("SPA", Some("es")),
            ("es-MX", Some("es")),
            ("Spanish", Some("es")),
            ("Español", Some("es")),
            ("eng", Some("en")),
            ("VIE", Some("vi")),
            ("Klingon", None),
            ("", None),
        ] {
            assert_eq!(language_code(raw), want, "{raw:?}");
        }
    }
}
