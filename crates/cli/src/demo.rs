//! `serve --demo`: a simulated practice's last 90 days (the simulator's practice with the
//! workflow on, entered through the real engine), kept going slowly in the background so the
//! dashboard moves. Every demo referral carries the source id `demo:N`; a database holding
//! anything else is never seeded, and the UI says the data is simulated.

use std::{io::IsTerminal, sync::Arc};

use anyhow::bail;
use refloop_app::{App, ReferralFilter};
use refloop_sim::{DEMO_PREFIX, DemoPractice, Params};
use tracing::instrument::WithSubscriber;

use crate::config::Config;

/// Seeds an empty database; `None` when it already holds demo data (kept as it is).
/// `connector` must be the one the service's own channels fall back to
/// ([`crate::run::build_app_with`]): the practice's people answer what goes out through it.
pub async fn seed(
    app: &App,
    config: &Config,
    connector: Arc<refloop_sim::SimConnector>,
) -> anyhow::Result<Option<DemoPractice>> {
    let existing = app.store().referrals(&ReferralFilter { limit: 1, ..ReferralFilter::default() }).await?;
    if let Some(r) = existing.items.first() {
        if r.source_ids.iter().any(|s| s.starts_with(DEMO_PREFIX)) {
            tracing::info!("demo data already present; not seeding again");
            return Ok(None);
        }
        bail!("refusing to seed demo data: this database already holds real referrals");
    }
    // Seeding writes thousands of transactions: on SQLite through a connection that does not
    // wait for the disk (it is demo data), then the service goes on as configured.
    let url = &config.database.url;
    let store: Arc<dyn refloop_app::Store> = if url.starts_with("sqlite:") {
        Arc::new(refloop_store::SqlStore::connect_scratch(url).await?)
    } else {
        app.store().clone()
    };
    let started = std::time::Instant::now();
    // One line per seeded referral would bury the start-up log: warnings only while seeding.
    let quiet = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .finish();
    let practice = DemoPractice::seed(store, app.policy().clone(), &Params::default(), app.now(), connector)
        .with_subscriber(quiet)
        .await?;
    tracing::info!(referrals = practice.referrals(), seconds = started.elapsed().as_secs(), "demo practice seeded");
    Ok(Some(practice))
}

/// Keeps the demo practice going: new orders and the people's answers every half minute.
pub async fn keep_going(mut practice: DemoPractice, app: App, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
                if let Err(e) = practice.tick(app.now()).await {
                    tracing::warn!(error = %e, "demo practice tick failed");
                }
                app.wake_workers();
            }
        }
    }
}

/// The demo's sign-in: `demo` / `refloop-demo`, created only when the database has no users.
pub const DEMO_USER: (&str, &str) = ("demo", "refloop-demo");

pub async fn ensure_user(app: &App) -> anyhow::Result<()> {
    if app.users().await?.is_empty() {
        app.save_user(DEMO_USER.0, refloop_app::Role::Admin, DEMO_USER.1).await?;
        tracing::warn!(user = DEMO_USER.0, "demo sign-in created; password refloop-demo (demo data only)");
    } else if is_demo_user(app, true).await? {
        app.set_user_disabled(DEMO_USER.0, false).await?;
        tracing::warn!(user = DEMO_USER.0, "demo sign-in enabled again while --demo runs");
    }
    Ok(())
}

/// The demo sign-in works only while `--demo` runs: served without it, a database that still
/// has `demo` with the demo password has that account disabled (its sessions end).
pub async fn retire_user(app: &App) -> anyhow::Result<()> {
    if is_demo_user(app, false).await? {
        app.set_user_disabled(DEMO_USER.0, true).await?;
        tracing::warn!(user = DEMO_USER.0, "the demo sign-in is disabled: this database is served without --demo");
    }
    Ok(())
}

/// Whether the `demo` account with the demo password exists and is `disabled`.
async fn is_demo_user(app: &App, disabled: bool) -> anyhow::Result<bool> {
    let users = app.users().await?;
    let Some(user) = users.iter().find(|u| u.username == DEMO_USER.0) else { return Ok(false) };
    Ok(user.disabled == disabled && app.password_matches(DEMO_USER.0, DEMO_USER.1).await?)
}

/// The manual clock lets an admin move time for every referral: it runs on an empty database
/// or one of demo data, and elsewhere only with `serve --allow-manual-clock`.
pub async fn manual_clock_allowed(app: &App) -> anyhow::Result<()> {
    let first = app.store().referrals(&ReferralFilter { limit: 1, ..ReferralFilter::default() }).await?;
    match first.items.first() {
        Some(r) if !r.source_ids.iter().any(|s| s.starts_with(DEMO_PREFIX)) => bail!(
            "clock.mode = \"manual\" on a database with real referrals: an admin could move time for all of them. \
             Use the system clock, or start with --allow-manual-clock on a test copy"
        ),
        _ => Ok(()),
    }
}
