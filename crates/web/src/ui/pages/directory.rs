//! The specialist directory (add, edit, "verified today") and the settings.

use super::*;

struct SpecialistRow {
    id: String,
    name: String,
    specialties: String,
    network: &'static str,
    phone: String,
    fax: String,
    direct: String,
    accepts_360x: bool,
    booking_url: String,
    fhir_base: String,
    scheduling_manifest: String,
    /// The booking link the manifest last gave.
    manifest_link: String,
    verified: String,
    stale: bool,
}

/// The add form as the person filled it (kept when it needs fixing).
#[derive(Default)]
struct EntryForm {
    name: String,
    specialties: String,
    network: String,
    phone: String,
    fax: String,
    direct: String,
    accepts_360x: bool,
    booking_url: String,
    fhir_base: String,
    scheduling_manifest: String,
}

#[derive(Template)]
#[template(path = "directory.html")]
struct DirectoryPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    stale_count: usize,
    rows: Vec<SpecialistRow>,
    can_edit: bool,
    form: EntryForm,
    /// What to fix in the add form.
    problem: String,
    networks: Vec<&'static str>,
}

async fn directory_page(s: &AppState, web: &Web, form: EntryForm, problem: String) -> UiResult<DirectoryPage> {
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let rows: Vec<SpecialistRow> = s
        .app
        .specialists(false)
        .await?
        .iter()
        .map(|x| SpecialistRow {
            id: x.id.clone(),
            name: x.name.clone(),
            specialties: x.specialties.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            network: x.network.as_str(),
            phone: x.phone.clone().unwrap_or_default(),
            fax: x.fax.clone().unwrap_or_default(),
            direct: x.direct_address.clone().unwrap_or_default(),
            accepts_360x: x.accepts_360x,
            booking_url: x.booking_url.clone().unwrap_or_default(),
            fhir_base: x.fhir_base.clone().unwrap_or_default(),
            scheduling_manifest: x.scheduling_manifest.clone().unwrap_or_default(),
            manifest_link: x.manifest.as_ref().and_then(|m| m.link.clone()).unwrap_or_default(),
            verified: when(Some(x.last_verified), &tz),
            stale: is_stale(x, now),
        })
        .collect();
    Ok(DirectoryPage {
        nav: web.nav("directory"),
        demo: ui(s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        stale_count: rows.iter().filter(|r| r.stale).count(),
        rows,
        can_edit: web.0.actor.role.may(Permission::EditDirectory),
        form,
        problem,
        networks: vec!["out-of-network", "in-network", "unknown"],
    })
}

pub async fn directory(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    Ok(render(&directory_page(&s, &web, EntryForm::default(), String::new()).await?))
}

/// Adds a directory entry, or saves an edited one (`id` given): an entry that needs fixing
/// comes back with what was typed and what to fix.
pub async fn save_entry(State(s): State<AppState>, web: Web, Form(f): Form<Params>) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::EditDirectory)?;
    let form = EntryForm {
        name: get(&f, "name").to_owned(),
        specialties: get(&f, "specialties").to_owned(),
        network: get(&f, "network").to_owned(),
        phone: get(&f, "phone").to_owned(),
        fax: get(&f, "fax").to_owned(),
        direct: get(&f, "direct_address").to_owned(),
        accepts_360x: get(&f, "accepts_360x") == "true",
        booking_url: get(&f, "booking_url").to_owned(),
        fhir_base: get(&f, "fhir_base").to_owned(),
        scheduling_manifest: get(&f, "scheduling_manifest").to_owned(),
    };
    let id = match get(&f, "id") {
        "" => refloop_app::new_id("spc"),
        id => id.to_owned(),
    };
    let body = crate::SpecialistBody {
        name: form.name.trim().to_owned(),
        specialties: form
            .specialties
            .split([',', ';'])
            .map(|x| x.trim().to_lowercase())
            .filter(|x| !x.is_empty())
            .collect(),
        network: Some(form.network.clone()),
        phone: Some(form.phone.clone()),
        fax: Some(form.fax.clone()),
        direct_address: Some(form.direct.clone()),
        accepts_360x: Some(form.accepts_360x),
        booking_url: Some(form.booking_url.clone()),
        fhir_base: Some(form.fhir_base.clone()),
        scheduling_manifest: Some(form.scheduling_manifest.clone()),
        last_verified: None,
    };
    let saved = match crate::parse_specialist(id, body, s.app.now()) {
        Ok(entry) => s.app.save_specialist(&web.0.actor, entry).await.map_err(crate::ApiError::from),
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(see_other("/directory")),
        Err(e) => {
            let what = e.field.as_deref().map(label_of).unwrap_or("This entry");
            let prefix = format!("{}: ", e.field.as_deref().unwrap_or_default());
            let why = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
            let mut page = directory_page(&s, &web, form, format!("{what}: {why}")).await?;
            page.notice = None;
            let mut r = render(&page);
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

/// A form field's label, for saying what to fix.
fn label_of(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "specialties" => "Specialties",
        "network" => "Network",
        "phone" => "Phone",
        "fax" => "Fax",
        "direct_address" => "Direct address",
        "booking_url" => "Booking link",
        "scheduling_manifest" => "Scheduling manifest",
        "fhir_base" => "FHIR endpoint",
        _ => "This entry",
    }
}

/// "Verified today": someone confirmed the entry's contact data.
pub async fn verify_entry(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::EditDirectory)?;
    s.app.verify_specialist(&web.0.actor, &id).await?;
    Ok(see_other("/directory"))
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    windows: Vec<(String, [String; 5])>,
    hours: String,
    holidays: Vec<(String, &'static str)>,
    channels: Vec<ChannelRow>,
    config: String,
}

struct ChannelRow {
    label: &'static str,
    mode: &'static str,
    live: bool,
    last_success: String,
    last_failure: String,
}

pub async fn settings(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    s.app.audit_action(&web.0.actor, "view", "settings", "configuration").await?;
    let p = s.app.policy();
    let windows = p
        .window_sets()
        .into_iter()
        .map(|(name, w)| {
            (name, [w.notify, w.scheduling, w.note_look, w.note_request, w.note_escalate].map(|w| w.reads()))
        })
        .collect();
    let today = s.app.now().to_zoned_datetime(p.time_zone.clone()).date();
    let hours = format!("{} ({})", p.calendar.describe(), p.time_zone_name());
    let holidays = p.calendar.next_holidays(today, 5).into_iter().map(|(d, n)| (d.to_string(), n)).collect();
    let config = if ui(&s).settings.is_empty() {
        format!("session idle timeout: {} min", SESSION_IDLE.as_secs() / 60)
    } else {
        ui(&s).settings.clone()
    };
    let tz = &s.app.policy().time_zone;
    let never = |t: Option<Timestamp>, live: bool| if live && t.is_none() { "never".to_owned() } else { when(t, tz) };
    let channels = s
        .app
        .channel_status()
        .await?
        .into_iter()
        .map(|c| {
            let live = c.mode.reaches_someone();
            ChannelRow {
                label: c.label,
                mode: c.mode.as_str(),
                live,
                last_success: never(c.last_success, live),
                last_failure: never(c.last_failure, live),
            }
        })
        .collect();
    let page = SettingsPage {
        nav: web.nav("settings"),
        demo: ui(&s).demo,
        notice: None,
        windows,
        hours,
        holidays,
        channels,
        config,
    };
    Ok(render(&page))
}
