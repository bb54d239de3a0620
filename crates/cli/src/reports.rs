//! `report`, `export` and `audit`: what the reports and the audit log say, for people and
//! for files.

use std::io::Write as _;

use anyhow::Context;

use crate::{config::Config, run};

pub async fn report_closure(
    config: &Config,
    from: Option<&str>,
    to: Option<&str>,
    by: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let tz = app.policy().time_zone.clone();
    let (from, to) = refloop_app::period::period(from, to, &tz, app.now()).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let group = by
        .map(|b| refloop_app::GroupBy::parse(b).ok_or_else(|| anyhow::anyhow!("--by: {}", refloop_app::GroupBy::NAMES)))
        .transpose()?;
    let report = app.closure_report(from, to, group).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let line = |name: &str, c: &refloop_app::Closure| {
        let rate = c.closed_loop_rate.map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let median =
            c.days.get("order-to-note").and_then(|d| d.median_days).map_or("—".to_owned(), |d| format!("{d:.1}"));
        println!(
            "{name:<24} {:>7} {:>7} {:>8} {:>12}   {}",
            c.referrals,
            c.closed_loop,
            rate,
            median,
            c.leakage_by_stage.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
    };
    println!(
        "Closure report, referrals ordered {} to {} (local dates in {}, both included)",
        refloop_app::period::local_date(from, &tz),
        refloop_app::period::last_day(to, &tz),
        tz.iana_name().unwrap_or("the practice's time zone")
    );
    println!("{:<24} {:>7} {:>7} {:>8} {:>12}   leakage by stage", "", "tracked", "closed", "rate", "median days");
    line("all", &report.total);
    for (k, c) in report.by.iter().flatten() {
        line(k, c);
    }
    let t = &report.total;
    println!(
        "mature closed-loop rate: {} ({} of {} referrals ordered {}+ days ago); {} still in progress within their windows{}",
        t.mature_closed_loop_rate.map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0)),
        t.mature_closed_loop,
        t.mature_referrals,
        app.policy().mature_after.as_seconds() / 86_400,
        t.in_progress,
        if t.in_progress_by_stage.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                t.in_progress_by_stage.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            )
        }
    );
    if let Some(rate) = report.total.unscheduled_catch_rate {
        println!(
            "unscheduled catch rate: {:.1}% ({} of {} escalated referrals scheduled afterwards)",
            rate * 100.0,
            report.total.caught_after_escalation,
            report.total.escalated_unscheduled
        );
    }
    Ok(())
}

pub async fn export_referrals(
    config: &Config,
    format: &str,
    from: Option<&str>,
    to: Option<&str>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if !matches!(format, "csv" | "json") {
        anyhow::bail!("--format: csv or json");
    }
    let app = run::build_app(config).await?;
    let tz = app.policy().time_zone.clone();
    let bound = |field: &str, raw: &str, end: bool| {
        refloop_app::period::bound(field, raw, &tz, end).map_err(|e| anyhow::anyhow!("--{e}"))
    };
    // Everything unless a bound is given.
    let from = from.map(|f| bound("from", f, false)).transpose()?.unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let to = to
        .map(|t| bound("to", t, true))
        .transpose()?
        .unwrap_or_else(|| app.now() + jiff::SignedDuration::from_hours(24));
    let referrals = app.store().referrals_ordered_between(from, to).await?;
    let ids: Vec<&str> = referrals.iter().map(|r| r.id.as_str()).collect();
    app.audit_export(&refloop_app::Actor::system("cli"), &ids).await?;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    if format == "csv" {
        refloop_app::export::write_csv(&referrals, &tz, &app.maturity(), out)?;
    } else {
        serde_json::to_writer_pretty(&mut out, &refloop_app::export::json_rows(&referrals, &tz, &app.maturity()))?;
        writeln!(out)?;
    }
    Ok(())
}

pub async fn report_cms50(config: &Config, year: i16, json: bool) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let report = app.cms50_report(year).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let line = |name: &str, c: &refloop_domain::cms50::Counts| {
        let rate = c.rate.map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0));
        println!("{name:<32} {:>10} {:>11} {:>9} {:>7}", c.initial_population, c.denominator, c.numerator, rate);
    };
    println!("{} — {year}", report.measure);
    println!("{:<32} {:>10} {:>11} {:>9} {:>7}", "", "initial", "denominator", "numerator", "rate");
    line("practice", &report.result.practice);
    for (provider, c) in &report.result.providers {
        line(provider, c);
    }
    for why in &report.why_zero {
        println!("why zero: {why}");
    }
    println!("(--json lists the patients behind each figure)");
    Ok(())
}

/// `refloop audit verify`: the chain's figures, or the first broken row (exit 1).
pub async fn audit_verify(app: &refloop_app::App) -> anyhow::Result<()> {
    let v = app.verify_audit().await?;
    if let Some(b) = v.broken {
        anyhow::bail!(
            "the audit chain is broken at row {} (chain position {}): {}; {} rows before it hold",
            b.seq,
            b.pos,
            b.why,
            v.checked
        );
    }
    let start = if v.starts_after > 0 {
        format!(" (from chain position {}, after the retention purge)", v.starts_after + 1)
    } else {
        String::new()
    };
    println!("audit chain intact: {} rows checked{start}", v.checked);
    Ok(())
}

/// `refloop audit export`: AuditEvent NDJSON, oldest first, in pages.
pub async fn audit_export(
    app: &refloop_app::App,
    from: Option<&str>,
    to: Option<&str>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let tz = &app.policy().time_zone;
    let bound = |field: &str, raw: &str, end: bool| {
        refloop_app::period::bound(field, raw, tz, end).map_err(|e| anyhow::anyhow!("--{e}"))
    };
    let from = from.map(|f| bound("from", f, false)).transpose()?;
    let to = to.map(|t| bound("to", t, true)).transpose()?;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut q = refloop_app::AuditQuery { from, to, limit: 1000, oldest_after: Some(0), ..Default::default() };
    let mut written = 0u64;
    loop {
        let page = app.audit_rows(&q).await?;
        for rec in &page {
            serde_json::to_writer(&mut out, &refloop_fhir::audit_event(rec))?;
            writeln!(out)?;
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == 1000 => q.oldest_after = Some(last.seq),
            _ => break,
        }
    }
    out.flush()?;
    let period =
        format!("{}..{}", from.map_or("start".into(), |f| f.to_string()), to.map_or("now".into(), |t| t.to_string()));
    app.audit_action(&refloop_app::Actor::system("cli"), "export", "audit", &period).await?;
    eprintln!("{written} audit events written");
    Ok(())
}
