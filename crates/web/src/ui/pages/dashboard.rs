//! The dashboard and the CSV export.

use super::*;

struct Kpis {
    referrals: usize,
    closed: usize,
    rate: String,
    /// Over the referrals whose whole path has had time to finish.
    mature_rate: String,
    mature: usize,
    mature_closed: usize,
    in_progress: usize,
    catch_rate: String,
    caught: usize,
    escalated: usize,
    median_to_note: String,
    p90_to_note: String,
}

impl Kpis {
    fn of(c: &Closure) -> Self {
        let to_note = c.days.get("order-to-note");
        Kpis {
            referrals: c.referrals,
            closed: c.closed_loop,
            rate: pct(c.closed_loop_rate),
            mature_rate: pct(c.mature_closed_loop_rate),
            mature: c.mature_referrals,
            mature_closed: c.mature_closed_loop,
            in_progress: c.in_progress,
            catch_rate: pct(c.unscheduled_catch_rate),
            caught: c.caught_after_escalation,
            escalated: c.escalated_unscheduled,
            median_to_note: days(to_note.and_then(|d| d.median_days)),
            p90_to_note: days(to_note.and_then(|d| d.p90_days)),
        }
    }
}

struct GroupRow {
    key: String,
    referrals: usize,
    closed: usize,
    rate: String,
    /// Every referral in it has had time to finish its path (trend rows; always for groups).
    mature: bool,
    median_to_note: String,
    catch_rate: String,
}

struct DaysRow {
    span: &'static str,
    count: usize,
    median: String,
    p90: String,
    mean: String,
}

struct DashboardForm {
    from: String,
    to: String,
    by: String,
    baseline_from: String,
    baseline_to: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    form: DashboardForm,
    by_options: Vec<(&'static str, &'static str)>,
    current: Kpis,
    baseline: Option<Kpis>,
    /// With a baseline: each figure now, then, and the change.
    compare: Vec<(String, String, String, String)>,
    /// What data there is: the first and last order date (local), if any.
    coverage: Option<(String, String)>,
    trend_unit: &'static str,
    /// `[reports] mature_after`, in days.
    mature_days: i64,
    trend_svg: String,
    trend: Vec<GroupRow>,
    funnel_svg: String,
    funnel: Vec<(&'static str, usize, String)>,
    leak_svg: String,
    /// In funnel order: the stage, how many leaked there and their share of the referrals,
    /// and how many are still in progress there.
    leak_stage: Vec<(&'static str, usize, String, usize)>,
    leak_reason: Vec<(String, usize, String)>,
    /// Period presets: label, from, to (local dates), and whether it is the one shown.
    presets: Vec<(&'static str, String, String, bool)>,
    days: Vec<DaysRow>,
    split_name: &'static str,
    split: Vec<GroupRow>,
    sampled: bool,
    /// The workflow's channels that only log: shown as a warning.
    channels_off: Vec<&'static str>,
}

const BY_OPTIONS: [(&str, &str); 5] = [
    ("specialty", "specialty"),
    ("provider", "referring provider"),
    ("specialist", "specialist"),
    ("network", "network"),
    ("urgency", "urgency"),
];

fn group_rows(groups: &std::collections::BTreeMap<String, Closure>) -> Vec<GroupRow> {
    groups
        .iter()
        .map(|(k, c)| {
            let kp = Kpis::of(c);
            GroupRow {
                key: k.clone(),
                referrals: kp.referrals,
                closed: kp.closed,
                rate: kp.rate,
                mature: true,
                median_to_note: kp.median_to_note,
                catch_rate: kp.catch_rate,
            }
        })
        .collect()
}

/// The period presets at `now`: this month, last month, last quarter, year to date (local
/// dates, both ends included), each marked when it is the period `[from, to)` shown.
fn presets(now: Timestamp, tz: &TimeZone, from: Timestamp, to: Timestamp) -> Vec<(&'static str, String, String, bool)> {
    let today = tz.to_datetime(now).date();
    let month = today.first_of_month();
    let last_month = month.checked_sub(jiff::Span::new().months(1)).unwrap_or(month);
    let quarter = month.checked_sub(jiff::Span::new().months(i64::from((month.month() - 1) % 3))).unwrap_or(month);
    let last_quarter = quarter.checked_sub(jiff::Span::new().months(3)).unwrap_or(quarter);
    let day_before = |d: jiff::civil::Date| d.yesterday().unwrap_or(d);
    let year = jiff::civil::date(today.year(), 1, 1);
    let shown = (date_of(from, tz), refloop_app::period::last_day(to, tz).to_string());
    [
        ("This month", month, today),
        ("Last month", last_month, day_before(month)),
        ("Last quarter", last_quarter, day_before(quarter)),
        ("Year to date", year, today),
    ]
    .into_iter()
    .map(|(label, a, b)| {
        let (a, b) = (a.to_string(), b.to_string());
        let current = shown == (a.clone(), b.clone());
        (label, a, b, current)
    })
    .collect()
}

/// The period against the baseline, figure by figure: current, baseline, and the change
/// (rates in percentage points, days in days).
fn compare_rows(current: &Closure, baseline: &Closure) -> Vec<(String, String, String, String)> {
    let points = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} pts", (a - b) * 100.0),
        _ => "–".to_owned(),
    };
    let share = |c: &Closure, stage: &str| {
        (c.referrals > 0).then(|| c.funnel.get(stage).copied().unwrap_or(0) as f64 / c.referrals as f64)
    };
    let to_note = |c: &Closure| c.days.get("order-to-note").and_then(|d| d.median_days);
    let mut rows = vec![
        (
            "Closed-loop rate, mature referrals".to_owned(),
            pct(current.mature_closed_loop_rate),
            pct(baseline.mature_closed_loop_rate),
            points(current.mature_closed_loop_rate, baseline.mature_closed_loop_rate),
        ),
        (
            "Closed-loop rate, all referrals".to_owned(),
            pct(current.closed_loop_rate),
            pct(baseline.closed_loop_rate),
            points(current.closed_loop_rate, baseline.closed_loop_rate),
        ),
        (
            "Unscheduled catch rate".to_owned(),
            pct(current.unscheduled_catch_rate),
            pct(baseline.unscheduled_catch_rate),
            points(current.unscheduled_catch_rate, baseline.unscheduled_catch_rate),
        ),
    ];
    for stage in ["patient-notified", "scheduled", "attended", "note-received"] {
        let (a, b) = (share(current, stage), share(baseline, stage));
        rows.push((format!("Reached {stage}"), pct(a), pct(b), points(a, b)));
    }
    let (a, b) = (to_note(current), to_note(baseline));
    let delta = match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} days", a - b),
        _ => "–".to_owned(),
    };
    rows.push(("Median days order → note".to_owned(), days(a), days(b), delta));
    rows
}

/// A chart followed by the link that downloads it.
fn with_download(svg: String, name: &str) -> String {
    let link = chart::download_link(&svg, name);
    format!("{svg}<p class=\"muted\">{link}</p>")
}

fn date_of(t: Timestamp, tz: &TimeZone) -> String {
    tz.to_datetime(t).date().to_string()
}

pub async fn dashboard(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    // Local dates, both ends inclusive (as the API and the CLI read them).
    let (from, to) = refloop_app::period::period(Some(get(&q, "from")), Some(get(&q, "to")), &tz, s.app.now())?;
    let by_name = BY_OPTIONS.iter().find(|(v, _)| *v == get(&q, "by")).unwrap_or(&BY_OPTIONS[0]);
    let by = GroupBy::parse(by_name.0).unwrap_or(GroupBy::Specialty);
    let weekly = to - from <= SignedDuration::from_hours(120 * 24);
    let (trend_by, trend_unit) = if weekly { (GroupBy::Week, "week") } else { (GroupBy::Month, "month") };

    // The trend's counts say how many referrals the period holds: the overview need not count.
    let trend = s.app.closure_trend(from, to, trend_by).await;
    let tracked = trend.as_ref().ok().map(|t| t.iter().map(|(_, n, _, _)| n).sum());
    let report = s.app.closure_overview(from, to, by, tracked).await?;
    let sampled = report.sampled;
    let total = report.total;
    let by_group = group_rows(&report.by.unwrap_or_default());
    let trend: Vec<GroupRow> = trend?
        .into_iter()
        .map(|(key, n, closed, mature)| GroupRow {
            key,
            referrals: n as usize,
            closed: closed as usize,
            rate: pct((n > 0).then(|| closed as f64 / n as f64)),
            mature,
            median_to_note: String::new(),
            catch_rate: String::new(),
        })
        .collect();

    let baseline_from = parse_local("baseline_from", get(&q, "baseline_from"), &tz)?;
    let baseline_to = match get(&q, "baseline_to") {
        "" => None,
        t => Some(refloop_app::period::bound("baseline_to", t, &tz, true)?),
    };
    let baseline_closure = match (baseline_from, baseline_to) {
        (Some(f), Some(t)) if t > f => Some(s.app.closure_report(f, t, None).await?.total),
        _ => None,
    };
    let compare = baseline_closure.as_ref().map(|b| compare_rows(&total, b)).unwrap_or_default();
    let baseline = baseline_closure.as_ref().map(Kpis::of);

    let trend_bars: Vec<Bar> = trend
        .iter()
        .map(|r| Bar {
            label: r.key.clone(),
            value: if r.referrals == 0 { 0.0 } else { r.closed as f64 / r.referrals as f64 },
            text: r.rate.clone(),
            provisional: !r.mature,
        })
        .collect();
    let stages = ["patient-notified", "scheduled", "attended", "note-received"];
    let mut funnel = vec![("ordered", total.referrals, pct(Some(1.0).filter(|_| total.referrals > 0)))];
    for st in stages {
        let n = total.funnel.get(st).copied().unwrap_or(0);
        funnel.push((st, n, pct((total.referrals > 0).then(|| n as f64 / total.referrals as f64))));
    }
    let funnel_bars: Vec<Bar> = funnel
        .iter()
        .map(|(l, n, _)| Bar { label: (*l).into(), value: *n as f64, text: n.to_string(), provisional: false })
        .collect();
    // Where they leaked, in the order of the path, each as a share of the referrals.
    let share = |n: usize| pct((total.referrals > 0).then(|| n as f64 / total.referrals as f64));
    let leak_stage: Vec<(&'static str, usize, String, usize)> =
        ["not notified", "not scheduled", "not attended", "no note"]
            .into_iter()
            .map(|st| {
                let n = total.leakage_by_stage.get(st).copied().unwrap_or(0);
                (st, n, share(n), total.in_progress_by_stage.get(st).copied().unwrap_or(0))
            })
            .collect();
    let leak_bars: Vec<Bar> = leak_stage
        .iter()
        .map(|(l, n, p, _)| Bar {
            label: (*l).into(),
            value: *n as f64,
            text: format!("{n} ({p})"),
            provisional: false,
        })
        .collect();
    let mut leak_reason: Vec<(String, usize, String)> =
        total.leakage_by_reason.iter().map(|(k, v)| (k.clone(), *v, share(*v))).collect();
    leak_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let span_order =
        ["ordered-to-notified", "notified-to-scheduled", "scheduled-to-attended", "attended-to-note", "order-to-note"];
    let days_rows = span_order
        .iter()
        .map(|span| {
            let d = total.days.get(span).cloned().unwrap_or_default();
            DaysRow {
                span,
                count: d.count,
                median: days(d.median_days),
                p90: days(d.p90_days),
                mean: days(d.mean_days),
            }
        })
        .collect();

    let page = DashboardPage {
        nav: web.nav("dashboard"),
        demo: ui(&s).demo,
        notice: None,
        form: DashboardForm {
            from: date_of(from, &tz),
            to: refloop_app::period::last_day(to, &tz).to_string(),
            by: by_name.0.to_owned(),
            baseline_from: baseline_from.map(|t| date_of(t, &tz)).unwrap_or_default(),
            baseline_to: baseline_to.map(|t| refloop_app::period::last_day(t, &tz).to_string()).unwrap_or_default(),
        },
        by_options: BY_OPTIONS.to_vec(),
        current: Kpis::of(&total),
        baseline,
        trend_unit,
        mature_days: s.app.policy().mature_after.as_seconds() / 86_400,
        trend_svg: with_download(
            chart::columns(&format!("Closed-loop rate by {trend_unit}"), &trend_bars, 1.0),
            "closed-loop-rate.svg",
        ),
        trend,
        funnel_svg: with_download(chart::horizontal("Referrals reaching each state", &funnel_bars, None), "funnel.svg"),
        funnel,
        leak_svg: with_download(chart::horizontal("Referrals leaking at each stage", &leak_bars, None), "leakage.svg"),
        leak_stage,
        leak_reason,
        presets: presets(s.app.now(), &tz, from, to),
        compare,
        coverage: s
            .app
            .store()
            .ordered_range()
            .await
            .map_err(refloop_app::AppError::from)?
            .map(|(a, b)| (date_of(a, &tz), date_of(b, &tz))),
        days: days_rows,
        split_name: by_name.1,
        split: by_group,
        sampled,
        channels_off: s.app.channels_off().into_iter().map(refloop_app::ChannelStatus::label_of).collect(),
    };
    Ok(render(&page))
}

pub async fn export_csv(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let (from, to) = refloop_app::period::period(Some(get(&q, "from")), Some(get(&q, "to")), &tz, s.app.now())?;
    let referrals = s.app.store().referrals_ordered_between(from, to).await.map_err(refloop_app::AppError::from)?;
    let ids: Vec<&str> = referrals.iter().map(|r| r.id.as_str()).collect();
    s.app.audit_export(&web.0.actor, &ids).await?;
    let name = format!("referrals-{}-{}.csv", date_of(from, &tz), refloop_app::period::last_day(to, &tz));
    csv_response(&s, &referrals, &name)
}

/// Referrals as a CSV download named `name` (the columns of `refloop export`).
pub(super) fn csv_response(s: &AppState, referrals: &[refloop_domain::Referral], name: &str) -> UiResult<Response> {
    let mut body = Vec::new();
    refloop_app::export::write_csv(referrals, &s.app.policy().time_zone, &s.app.maturity(), &mut body)
        .map_err(|e| UiError(StatusCode::INTERNAL_SERVER_ERROR, format!("export failed: {e}")))?;
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_whole_local_months_and_quarters() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let now: Timestamp = "2026-05-15T03:00:00Z".parse().unwrap(); // 23:00 on 05-14 in New York
        let (from, to) = refloop_app::period::period(Some("2026-01-01"), Some("2026-03-31"), &tz, now).unwrap();
        let got: Vec<(&str, String, String, bool)> = presets(now, &tz, from, to);
        let want = [
            ("This month", "2026-05-01", "2026-05-14", false),
            ("Last month", "2026-04-01", "2026-04-30", false),
            ("Last quarter", "2026-01-01", "2026-03-31", true),
            ("Year to date", "2026-01-01", "2026-05-14", false),
        ];
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0, g.1.as_str(), g.2.as_str(), g.3), w);
        }
    }
}
