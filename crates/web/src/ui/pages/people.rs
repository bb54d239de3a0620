//! Patients and referring providers as people on staff pages: name, date of birth, a masked
//! phone with a link to reveal it (each reveal an audited read), preferred language.

use refloop_app::People;
use refloop_domain::{PatientId, ProviderId};

use super::*;

/// What a row shows of its patient.
pub(crate) struct PersonCell {
    pub id: String,
    pub name: String,
    pub birth_date: String,
    /// Masked ("•••• 0123") unless revealed.
    pub phone: String,
    pub has_phone: bool,
    pub revealed: bool,
    pub language: String,
    /// This page again, asking to reveal this patient's phone.
    pub reveal_href: String,
}

/// The last four digits of a phone number, the rest masked.
fn mask(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(4)..];
    format!("•••• {tail}")
}

/// The patient `id` as a row shows it; `revealed` is the patient whose phone this page shows
/// in full, and `page` the page's own path and query (without `reveal`).
pub(crate) fn person(
    people: &People,
    id: &PatientId,
    revealed: Option<&(PatientId, String)>,
    page: &str,
) -> PersonCell {
    let p = people.patient(id);
    let phone = p.and_then(|p| p.phone.clone()).unwrap_or_default();
    let shown = revealed.filter(|(r, _)| r == id);
    let sep = if page.contains('?') { '&' } else { '?' };
    PersonCell {
        id: id.as_str().to_owned(),
        name: p.and_then(|p| p.name.clone()).unwrap_or_default(),
        birth_date: p.and_then(|p| p.birth_date.clone()).unwrap_or_default(),
        has_phone: !phone.is_empty(),
        revealed: shown.is_some(),
        phone: match shown {
            Some((_, full)) => full.clone(),
            None if phone.is_empty() => String::new(),
            None => mask(&phone),
        },
        language: p.and_then(|p| p.language.as_deref()).map(refloop_domain::language_name).unwrap_or_default(),
        reveal_href: format!("{page}{sep}reveal={}", crate::ui::percent_encode(id.as_str())),
    }
}

/// A provider's name with the id, or the id alone.
pub(crate) fn provider(people: &People, id: &ProviderId) -> String {
    match people.provider(id) {
        Some(name) => format!("{name} ({id})"),
        None => id.as_str().to_owned(),
    }
}

/// The patient whose phone the page was asked to reveal (`?reveal=ID`), read and audited.
pub(crate) async fn revealed(s: &AppState, web: &Web, q: &Params) -> UiResult<Option<(PatientId, String)>> {
    let raw = get(q, "reveal");
    if raw.is_empty() {
        return Ok(None);
    }
    web.require(Permission::ReadPatients)?;
    let id = PatientId::parse(raw).map_err(|_| UiError(StatusCode::NOT_FOUND, "No such patient.".into()))?;
    let phone = s.app.reveal_phone(&web.0.actor, &id).await?.unwrap_or_default();
    Ok(Some((id, phone)))
}

/// A path with its query (sorted, empty values and `drop` left out), for links back to it.
pub(crate) fn href(path: &str, q: &Params, drop: &[&str]) -> String {
    let mut pairs: Vec<_> = q.iter().filter(|(k, v)| !v.is_empty() && !drop.contains(&k.as_str())).collect();
    pairs.sort();
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", crate::ui::percent_encode(k), crate::ui::percent_encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// A referral a message or document may belong to, as a row shows it.
pub(crate) struct Candidate {
    pub id: String,
    pub patient: PersonCell,
    pub specialty: String,
    pub state: &'static str,
    pub ordered: String,
}

/// `referrals` as candidate rows on the page `here`, their patients read (an audited read).
pub(crate) async fn candidates(
    s: &AppState,
    web: &Web,
    referrals: &[refloop_domain::Referral],
    here: &str,
) -> UiResult<Vec<Candidate>> {
    let tz = s.app.policy().time_zone.clone();
    let patients: Vec<PatientId> = referrals.iter().map(|r| r.patient_id.clone()).collect();
    let people = s.app.people(&web.0.actor, &patients, &[]).await?;
    Ok(referrals
        .iter()
        .map(|r| Candidate {
            id: r.id.to_string(),
            patient: person(&people, &r.patient_id, None, here),
            specialty: r.specialty.as_ref().map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
            state: r.state.as_str(),
            ordered: when(Some(r.ordered_at), &tz),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_show_only_their_last_four_digits() {
        assert_eq!(mask("+15555550123"), "•••• 0123");
        assert_eq!(mask("12"), "•••• 12");
    }
}
