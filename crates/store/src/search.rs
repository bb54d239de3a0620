//! The referral list's filter, search and order as SQL, one text for both dialects, and
//! the `IN (…)` lists of the batch reads.

use refloop_app::{ReferralFilter, ReferralSort};
use sqlx::QueryBuilder;

use crate::row::{fold, ms};

/// Most ids one `IN (…)` list carries.
pub(crate) const IN_LIST: usize = 500;

/// `select` (from one table with an `id` column) of the rows whose id is one of `ids`.
pub(crate) fn id_in<'a, DB>(select: &str, ids: impl Iterator<Item = &'a str>) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    let mut q = QueryBuilder::new(select);
    q.push(" WHERE id IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.to_owned());
    }
    q.push(")");
    q
}

/// `text` with LIKE's wildcards escaped (the pattern uses `ESCAPE '\'`).
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pattern for a name search: each folded word the start of a word of the name, in order
/// (" pat exa" finds " pat example").
pub(crate) fn name_pattern(q: &str) -> Option<String> {
    let folded = fold(q);
    if folded.is_empty() {
        return None;
    }
    let words: Vec<String> = folded.split(' ').map(like_escaped).collect();
    Some(format!("% {}%", words.join("% ")))
}

/// Appends the WHERE clause of `f` (referrals aliased `r`); `with_cursor` adds the keyset
/// condition of the newest-first order.
pub(crate) fn push_where<DB>(q: &mut QueryBuilder<DB>, f: &ReferralFilter, with_cursor: bool)
where
    DB: sqlx::Database,
    String: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
    i64: for<'e> sqlx::Encode<'e, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE 1 = 1");
    if let Some(state) = f.state {
        q.push(" AND r.state = ").push_bind(state.as_str().to_owned());
    }
    if let Some(s) = &f.specialty {
        q.push(" AND r.specialty = ").push_bind(s.as_str().to_owned());
    }
    if let Some(p) = &f.provider {
        q.push(" AND r.referring_provider = ").push_bind(p.clone());
    }
    if let Some(t) = f.overdue_at {
        q.push(" AND r.stage_due_at < ").push_bind(ms(t));
    }
    if let Some(t) = f.ordered_from {
        q.push(" AND r.ordered_at >= ").push_bind(ms(t));
    }
    if let Some(t) = f.ordered_before {
        q.push(" AND r.ordered_at < ").push_bind(ms(t));
    }
    if let Some(text) = f.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // Our referral ids as FHIR serves them (`ref-…`) are `ref_…` here.
        let id_prefix = match text.strip_prefix("ref-") {
            Some(rest) => format!("ref_{rest}"),
            None => text.to_owned(),
        };
        q.push(" AND (r.id LIKE ").push_bind(format!("{}%", like_escaped(&id_prefix))).push(" ESCAPE '\\'");
        q.push(" OR r.patient_id = ").push_bind(text.to_owned());
        q.push(" OR r.id IN (SELECT referral_id FROM referral_keys WHERE key = ").push_bind(text.to_owned()).push(")");
        if let Some(pattern) = name_pattern(text) {
            q.push(" OR r.patient_id IN (SELECT id FROM patients WHERE name_key LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        q.push(")");
    }
    if with_cursor && let Some((t, id)) = &f.after {
        q.push(" AND (r.ordered_at < ").push_bind(ms(*t));
        q.push(" OR (r.ordered_at = ")
            .push_bind(ms(*t))
            .push(" AND r.id < ")
            .push_bind(id.as_str().to_owned())
            .push("))");
    }
}

/// The ORDER BY of a sort; ties broken by the newest order, then id, so pages are stable.
pub(crate) fn order_by(sort: ReferralSort) -> &'static str {
    match sort {
        ReferralSort::Ordered => " ORDER BY r.ordered_at DESC, r.id DESC",
        ReferralSort::OrderedAsc => " ORDER BY r.ordered_at, r.id",
        ReferralSort::Due => {
            " ORDER BY CASE WHEN r.stage_due_at IS NULL THEN 1 ELSE 0 END, r.stage_due_at, r.ordered_at DESC, r.id DESC"
        }
        ReferralSort::Patient => {
            " ORDER BY CASE WHEN p.name_key IS NULL THEN 1 ELSE 0 END, p.name_key, r.ordered_at DESC, r.id DESC"
        }
        ReferralSort::State => {
            " ORDER BY CASE r.state WHEN 'ordered' THEN 0 WHEN 'patient-notified' THEN 1 WHEN 'scheduled' THEN 2 \
             WHEN 'attended' THEN 3 WHEN 'note-received' THEN 4 WHEN 'closed-incomplete' THEN 5 ELSE 6 END, \
             r.ordered_at DESC, r.id DESC"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_search_is_word_prefixes_with_wildcards_escaped() {
        assert_eq!(name_pattern("Pat Exa").as_deref(), Some("% pat% exa%"));
        assert_eq!(name_pattern("garcía").as_deref(), Some("% garcia%"));
        assert_eq!(name_pattern("  ").as_deref(), None);
        assert_eq!(like_escaped("ref_1%"), "ref\\_1\\%");
    }
}
