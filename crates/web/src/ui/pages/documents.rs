//! Unfiled documents: what came in (an inbound fax, a Direct message's C-CDA or PDF) that no
//! referral claimed. Staff view a document inline — a PDF embedded, a C-CDA rendered to safe
//! HTML with the raw XML a click away — search the patient's referrals, file it on one (as the
//! consult note, which closes the loop, or as another document), or dismiss it with a reason.
//! Every view is an audited read.

use refloop_app::documents::{DocumentFilter, DocumentRecord, DocumentRole, DocumentStatus};

use super::{
    people::{Candidate, candidates},
    *,
};

/// A document as a list row.
pub(crate) struct DocRow {
    pub id: String,
    pub received: String,
    pub source: String,
    pub name: String,
    pub kind: &'static str,
    pub size: String,
    pub read_as: &'static str,
    pub status: &'static str,
    pub referral: String,
}

fn kind(media_type: &str) -> &'static str {
    match media_type {
        "application/pdf" => "PDF",
        m if m.ends_with("xml") => "C-CDA",
        _ => "other",
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

pub(crate) fn doc_row(d: &DocumentRecord, tz: &TimeZone) -> DocRow {
    DocRow {
        id: d.id.clone(),
        received: when(Some(d.received_at), tz),
        source: d.source.clone(),
        name: d.name.clone(),
        kind: kind(&d.media_type),
        size: size(d.size),
        read_as: match d.role {
            Some(DocumentRole::ConsultNote) => "consult note",
            _ => "document",
        },
        status: d.status.as_str(),
        referral: d.referral_id.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    status: String,
    statuses: Vec<&'static str>,
    rows: Vec<DocRow>,
}

#[derive(Template)]
#[template(path = "document.html")]
struct DocumentPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    d: DocRow,
    sha256: String,
    inbox_id: String,
    settled: String,
    reason: String,
    /// Empty once retention emptied the content.
    has_content: bool,
    pdf: bool,
    /// The C-CDA rendered (inert HTML), or why it could not be.
    cda_html: String,
    cda_error: String,
    unfiled: bool,
    can_settle: bool,
    q: String,
    searched: bool,
    candidates: Vec<Candidate>,
}

pub async fn documents(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::WorkTasks)?;
    let tz = s.app.policy().time_zone.clone();
    let status = match get(&q, "status") {
        "" => Some(DocumentStatus::Unfiled),
        "any" => None,
        v => Some(
            DocumentStatus::parse(v)
                .ok_or_else(|| UiError(StatusCode::UNPROCESSABLE_ENTITY, "Status: choose one from the list.".into()))?,
        ),
    };
    let docs = s.app.documents(&web.0.actor, &DocumentFilter { status, referral: None, limit: 200 }).await?;
    let page = DocumentsPage {
        nav: web.nav("worklist"),
        demo: ui(&s).demo,
        notice: None,
        status: status.map_or("any", DocumentStatus::as_str).to_owned(),
        statuses: vec!["unfiled", "filed", "dismissed", "any"],
        rows: docs.iter().map(|d| doc_row(d, &tz)).collect(),
    };
    Ok(render(&page))
}

pub async fn document(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> UiResult<Response> {
    web.require(Permission::WorkTasks)?;
    let d = s.app.document(&web.0.actor, &id).await?;
    let tz = s.app.policy().time_zone.clone();
    let (mut cda_html, mut cda_error) = (String::new(), String::new());
    if d.media_type.ends_with("xml") && !d.content.is_empty() {
        match refloop_cda::Document::parse(&d.content) {
            Ok(doc) => cda_html = doc.to_html(),
            Err(e) => cda_error = e.to_string(),
        }
    }
    let text = get(&q, "q");
    let mut found_rows = Vec::new();
    if !text.is_empty() {
        let f = ReferralFilter { q: Some(text.to_owned()), limit: 10, ..ReferralFilter::default() };
        let found = s.app.referrals(&web.0.actor, &f).await?;
        found_rows = candidates(&s, &web, &found.items, &format!("/documents/{id}")).await?;
    }
    let page = DocumentPage {
        nav: web.nav("worklist"),
        demo: ui(&s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        sha256: d.sha256.clone(),
        inbox_id: d.inbox_id.clone().unwrap_or_default(),
        settled: match (&d.settled_by, d.settled_at) {
            (Some(by), Some(at)) => format!("{} by {by}", when(Some(at), &tz)),
            _ => String::new(),
        },
        reason: d.reason.clone().unwrap_or_default(),
        has_content: !d.content.is_empty(),
        pdf: d.media_type == "application/pdf",
        cda_html,
        cda_error,
        unfiled: d.status == DocumentStatus::Unfiled,
        can_settle: web.0.actor.role.may(Permission::WriteReferrals),
        q: text.to_owned(),
        searched: !text.is_empty(),
        candidates: found_rows,
        d: doc_row(&d, &tz),
    };
    Ok(render_framing_self(&page))
}

/// The document's bytes, for the page's viewer or to download: a PDF as itself, XML as plain
/// text (shown, never run). The read is audited.
pub async fn document_content(State(s): State<AppState>, web: Web, Path(id): Path<String>) -> UiResult<Response> {
    web.require(Permission::WorkTasks)?;
    let d = s.app.document(&web.0.actor, &id).await?;
    if d.content.is_empty() {
        return Err(UiError(StatusCode::GONE, "The document's content was emptied after its retention period.".into()));
    }
    let media_type = if d.media_type == "application/pdf" { "application/pdf" } else { "text/plain; charset=utf-8" };
    let mut r = d.content.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_DISPOSITION, axum::http::HeaderValue::from_static("inline"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("default-src 'none'; frame-ancestors 'self'"),
    );
    h.insert(header::X_FRAME_OPTIONS, axum::http::HeaderValue::from_static("SAMEORIGIN"));
    Ok(r)
}

/// Files (`file`, with `referral_id` or a search that finds one referral, and `role`) or
/// dismisses (`dismiss`, with `reason`) an unfiled document.
pub async fn document_action(
    State(s): State<AppState>,
    web: Web,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WriteReferrals)?;
    web.require(Permission::WorkTasks)?;
    let actor = &web.0.actor;
    match action.as_str() {
        "file" => {
            let role = DocumentRole::parse(get(&f, "role")).ok_or_else(|| {
                UiError(StatusCode::UNPROCESSABLE_ENTITY, "File it as: choose consult note or other document.".into())
            })?;
            let target = get(&f, "referral_id");
            let referral = match ReferralId::parse(target) {
                Ok(r) => r,
                Err(_) if target.is_empty() => {
                    return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "Enter the referral to file it on.".into()));
                }
                Err(_) => super::inbox::find_one(&s, &web, target).await?,
            };
            s.app.file_document(&id, &referral, role, actor).await?;
            Ok(see_other(&format!("/referrals/{referral}")))
        }
        "dismiss" => {
            s.app.dismiss_document(&id, get(&f, "reason"), actor).await?;
            Ok(see_other("/documents"))
        }
        _ => Err(UiError(StatusCode::NOT_FOUND, "No such action.".into())),
    }
}
