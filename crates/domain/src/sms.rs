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
    let word: String =
        body.trim().trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace()).to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => SmsReply::OptOut,
        "START" | "UNSTOP" => SmsReply::OptIn,
        "HELP" | "INFO" => SmsReply::Help,
        "YES" | "Y" | "YEP" | "YEAH" | "BOOKED" | "SCHEDULED" | "DONE" | "I DID" | "YES I DID" => SmsReply::Yes,
        "NO" | "N" | "NOPE" | "NOT YET" => SmsReply::No,
        _ => SmsReply::Other,
    }
}

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
            ("stop calling me", SmsReply::Other),
            ("can I come on Tuesday?", SmsReply::Other),
            ("", SmsReply::Other),
        ] {
            assert_eq!(classify_sms(text), want, "{text:?}");
        }
    }
}
