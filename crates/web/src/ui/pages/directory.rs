//! The specialist directory and the settings.

use super::*;

struct SpecialistRow {
    name: String,
    specialties: String,
    network: &'static str,
    phone: String,
    fax: String,
    direct: String,
    verified: String,
    stale: bool,
}

#[derive(Template)]
#[template(path = "directory.html")]
struct DirectoryPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    stale_count: usize,
    rows: Vec<SpecialistRow>,
}

pub async fn directory(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let rows: Vec<SpecialistRow> = s
        .app
        .specialists(false)
        .await?
        .iter()
        .map(|x| SpecialistRow {
            name: x.name.clone(),
            specialties: x.specialties.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            network: x.network.as_str(),
            phone: x.phone.clone().unwrap_or_default(),
            fax: x.fax.clone().unwrap_or_default(),
            direct: x.direct_address.clone().unwrap_or_default(),
            verified: when(Some(x.last_verified), &tz),
            stale: is_stale(x, now),
        })
        .collect();
    let page = DirectoryPage {
        nav: web.nav("directory"),
        demo: ui(&s).demo,
        notice: None,
        stale_count: rows.iter().filter(|r| r.stale).count(),
        rows,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    windows: Vec<(&'static str, String, String, String, String, String)>,
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
    let p = s.app.policy();
    let windows = [Urgency::Routine, Urgency::Urgent]
        .into_iter()
        .map(|u| {
            let w = p.windows(None, u);
            (
                u.as_str(),
                w.notify.to_string(),
                w.scheduling.to_string(),
                w.note_look.to_string(),
                w.note_request.to_string(),
                w.note_escalate.to_string(),
            )
        })
        .collect();
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
    let page = SettingsPage { nav: web.nav("settings"), demo: ui(&s).demo, notice: None, windows, channels, config };
    Ok(render(&page))
}
