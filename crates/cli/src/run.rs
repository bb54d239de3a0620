//! The composition root: config → store, clock, connectors, app → HTTP and workers.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use refloop_app::{App, Clock, ManualClock, SystemClock};
use refloop_hl7::Ingest;
use refloop_store::SqlStore;

use crate::config::{ClockMode, Config, redact_url};

/// Opens the configured database and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let shown = redact_url(&config.database.url);
    let store = SqlStore::connect(&config.database.url).await.with_context(|| format!("opening {shown}"))?;
    store.migrate().await.with_context(|| format!("migrating {shown}"))?;
    Ok(store)
}

/// Waits for the configured database to answer, trying again with backoff (1 s doubling to
/// 30 s) and logging each failed attempt, up to `[database] connect_timeout`. Errors that
/// waiting cannot cure (a bad URL or path) end it at once.
pub async fn wait_for_database(config: &Config) -> anyhow::Result<()> {
    let shown = redact_url(&config.database.url);
    let deadline = std::time::Instant::now() + config.connect_timeout();
    let mut pause = std::time::Duration::from_secs(1);
    for attempt in 1u32.. {
        match SqlStore::connect(&config.database.url).await {
            Ok(store) => {
                store.close().await;
                return Ok(());
            }
            Err(e @ refloop_app::StoreError::Unavailable(_)) if std::time::Instant::now() + pause < deadline => {
                tracing::warn!(attempt, database = %shown, error = %e, retry_in_s = pause.as_secs(), "the database cannot be reached yet; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {shown}")),
        }
    }
    unreachable!("the attempts run until the deadline")
}

pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    build_app_with(config, None).await
}

/// The app; each channel the config leaves on the log goes to `simulated` when given
/// (`serve --demo`).
pub async fn build_app_with(
    config: &Config,
    simulated: Option<Arc<dyn refloop_app::Connector>>,
) -> anyhow::Result<App> {
    let store = open_store(config).await?;
    let clock: Arc<dyn Clock> = match config.clock_mode()? {
        ClockMode::System => Arc::new(SystemClock),
        ClockMode::Manual { start } => Arc::new(ManualClock::new(start.unwrap_or_else(|| SystemClock.now()))),
    };
    let store: Arc<dyn refloop_app::Store> = Arc::new(store);
    let mut channels = refloop_connectors::Channels::log_only();
    if let Some((sms, _)) = config.sms() {
        channels.sms = Arc::new(refloop_connectors::Twilio::new(sms, store.clone()));
    }
    let mut problem_chat = None;
    if config.chat_live() {
        let chat = Arc::new(refloop_connectors::SlackWebhook::new(
            &config.chat.webhook_url,
            &config.chat.link_base,
            store.clone(),
        ));
        problem_chat = Some(chat.clone());
        channels.chat = chat;
    }
    let direct = config.direct_relay();
    if config.fax_live() || direct.is_some() {
        let fax = config.fax_api();
        channels.note_request =
            Arc::new(refloop_connectors::NoteRequests::new(fax, direct, store.clone(), clock.clone()));
    }
    if config.ehr.write_back
        && let Some(auth) = config.ehr_poller_auth()?
    {
        let client = Arc::new(refloop_fhir::EhrClient::new(&config.ehr.base_url, auth));
        channels.ehr_task =
            Arc::new(refloop_fhir::EhrWriter::new(client, store.clone(), clock.clone(), config.patient_texts()));
    }
    // The note lookup applies what it finds through the FHIR ingest, which needs the app.
    let lookup_ingest = Arc::new(std::sync::OnceLock::new());
    if let Some(auth) = config.ehr_poller_auth()? {
        let client = Arc::new(refloop_fhir::EhrClient::new(&config.ehr.base_url, auth));
        channels.note_lookup =
            Arc::new(refloop_fhir::NoteLookup::new(client, store.clone(), clock.clone(), lookup_ingest.clone()));
    }
    if let Some(simulated) = simulated {
        channels.simulate_the_rest(simulated);
    }
    let connector: Arc<dyn refloop_app::Connector> = Arc::new(channels);
    let app = App::new(store, clock, config.policy()?, connector)
        .with_texts(config.patient_texts())
        .with_outbox(config.outbox())
        .with_auth(config.auth_settings())
        .with_retention(config.retention())
        .with_protocol(Arc::new(refloop_hl7::Hl7Protocol::new(config.hl7_map()?)))
        .with_protocol(Arc::new(refloop_fhir::FhirProtocol::new(fhir_config(config)?)))
        .with_protocol(Arc::new(refloop_direct::DirectProtocol::with_hl7(config.note_types()?, config.hl7_map()?)))
        .with_protocol(Arc::new(refloop_direct::FaxProtocol))
        .with_protocol(Arc::new(refloop_app::SmsReplies));
    let app = match problem_chat {
        Some(chat) => app.with_problem_notices(chat, config.problem_settings()?),
        None => app,
    };
    let _ = lookup_ingest.set(fhir_ingest(config, &app)?);
    Ok(app)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // One SIGTERM stream for both signals, so a second one that comes at once is not lost.
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let first = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let first = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = first => {}
    }
    // A second signal: exit now. What was acknowledged is committed; sends cut off are
    // looked up at the provider after the restart.
    #[cfg(unix)]
    if let Some(mut s) = term {
        tokio::spawn(async move {
            s.recv().await;
            tracing::warn!("second SIGTERM: exiting now");
            std::process::exit(143);
        });
    }
    tracing::info!("shutting down: finishing the sends under way (a second SIGTERM exits at once)");
}

/// Most messages one commit carries.
const GROUP_COMMIT: usize = 256;

/// The HL7 front door for `app`.
pub fn ingest(config: &Config, app: &App) -> anyhow::Result<Ingest> {
    Ok(Ingest::new(app.clone(), config.hl7_map()?).with_senders(config.hl7_senders()?))
}

/// The FHIR front door for `app` (the same specialty map and time zone as HL7).
pub fn fhir_ingest(config: &Config, app: &App) -> anyhow::Result<refloop_fhir::FhirIngest> {
    Ok(refloop_fhir::FhirIngest::new(app.clone(), fhir_config(config)?))
}

/// FHIR reads with the same specialty map and time zone as HL7.
fn fhir_config(config: &Config) -> anyhow::Result<refloop_fhir::FhirConfig> {
    let map = config.hl7_map()?;
    Ok(refloop_fhir::FhirConfig { time_zone: map.time_zone, specialty_map: map.specialty_map })
}

pub async fn serve(mut config: Config, demo: bool, allow_manual_clock: bool) -> anyhow::Result<()> {
    if demo {
        // The demo's shared sign-in is for trying refloop out, never for patient data.
        config.auth.mfa_required.clear();
    }
    let mllp_cfg = config.mllp_listener()?;
    let http_limits = config.http_limits()?;
    // Before any listener opens, so that the first messages are counted too.
    let metrics = PrometheusBuilder::new().install_recorder().ok();
    let scheme = if http_limits.tls.is_some() { "https" } else { "http" };
    let tls = if mllp_cfg.tls.is_some() { " with TLS" } else { "" };
    wait_for_database(&config).await?;
    let sim = demo.then(|| Arc::new(refloop_sim::SimConnector::default()));
    let app = build_app_with(&config, sim.clone().map(|s| s as Arc<dyn refloop_app::Connector>)).await?;
    if matches!(config.clock_mode()?, ClockMode::Manual { .. }) && !demo && !allow_manual_clock {
        crate::demo::manual_clock_allowed(&app).await?;
    }
    let practice = match sim {
        Some(sim) => {
            crate::demo::ensure_user(&app).await?;
            crate::demo::seed(&app, &config, sim).await?
        }
        None => {
            crate::demo::retire_user(&app).await?;
            None
        }
    };
    let hl7 = ingest(&config, &app)?.with_group_commit(GROUP_COMMIT);
    let addr = config.http_addr()?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let mllp_addr: std::net::SocketAddr = config.server.mllp.parse()?;
    let mllp = tokio::net::TcpListener::bind(mllp_addr).await.with_context(|| format!("binding {mllp_addr}"))?;
    let mllp_local = mllp.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mllp_task = tokio::spawn(refloop_hl7::serve_mllp(hl7.clone(), mllp, mllp_cfg, stopped(stop_rx.clone())));
    if let Some(practice) = practice {
        tokio::spawn(crate::demo::keep_going(practice, app.clone(), stopped(stop_rx.clone())));
    }
    let workers = match config.clock_mode()? {
        ClockMode::System => {
            let app = app.clone();
            let (poll, grace) = (config.poll_interval(), config.shutdown_grace());
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(async move {
                app.run_workers(poll, grace, async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
            }))
        }
        ClockMode::Manual { .. } => {
            tracing::info!("manual clock: workers run only on POST /api/v1/clock/advance");
            None
        }
    };
    tracing::info!(mllp = %mllp_local, "MLLP listening on mllp://{mllp_local}{tls}");
    tracing::info!(
        http = %local,
        database = app.store().backend(),
        clock = if app.clock().manual().is_some() { "manual" } else { "system" },
        "refloop listening on {scheme}://{local}"
    );
    let signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        // systemd (Type=notify): stopping, finishing the sends under way.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        let _ = signal.send(true);
    });
    let fhir = fhir_ingest(&config, &app)?;
    let poller = match config.ehr_poller_auth()? {
        Some(auth) => {
            let client = std::sync::Arc::new(refloop_fhir::EhrClient::new(&config.ehr.base_url, auth));
            let poller = refloop_fhir::Poller::new(
                client,
                fhir.clone(),
                config.ehr.resource_types.clone(),
                config.ehr.page_size,
            );
            let every = std::time::Duration::from_secs(config.ehr.poll_interval.as_seconds().unsigned_abs());
            tracing::info!(every_s = every.as_secs(), "FHIR pull mode on");
            app.watch_poller("fhir-poller");
            tokio::spawn(poller.clone().run(every, stopped(stop_rx.clone())));
            Some(poller)
        }
        None => None,
    };
    if let Some(mailbox) = config.direct_mailbox()? {
        let every = std::time::Duration::from_secs(config.direct.imap_poll.as_seconds().unsigned_abs().max(1));
        tracing::info!(every_s = every.as_secs(), "Direct mailbox read");
        app.watch_poller("direct-mailbox");
        tokio::spawn(refloop_direct::run_mailbox(app.clone(), mailbox, every, stopped(stop_rx.clone())));
    }
    {
        // SMART Scheduling Links manifests of the directory's entries that name one.
        let (app, stop) = (app.clone(), stopped(stop_rx.clone()));
        let every =
            std::time::Duration::from_secs(config.directory.scheduling_poll.as_seconds().unsigned_abs().max(60));
        tokio::spawn(async move {
            let http = refloop_connectors::scheduling::manifest_client();
            let read = || async {
                refloop_connectors::scheduling::refresh_manifests(&app, &http).await;
                Ok::<(), std::convert::Infallible>(())
            };
            refloop_app::every("scheduling manifests", every, stop, read).await
        });
    }
    if !matches!(config.clock_mode()?, ClockMode::Manual { .. }) {
        let (app, stop) = (app.clone(), stopped(stop_rx.clone()));
        tokio::spawn(async move {
            let check = || async { app.check_problems().await.map(|_| ()) };
            refloop_app::every("problem check", std::time::Duration::from_secs(60), stop, check).await
        });
    }
    let sms = config.sms().map(|(_, hooks)| hooks);
    let ui = refloop_web::UiInfo { settings: config.redacted_toml(), demo };
    let oidc = config.oidc();
    let fax = (!config.fax.webhook_secret.is_empty()).then(|| refloop_web::FaxWebhook::new(&config.fax.webhook_secret));
    let state = refloop_web::AppState { app: app.clone(), hl7, fhir, poller, sms, fax, metrics, ui, oidc };
    // systemd (Type=notify): ready once both listeners are bound and the database migrated.
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    refloop_web::serve_with(state, listener, http_limits, stopped(stop_rx.clone())).await?;
    let _ = stop_tx.send(true);
    let _ = mllp_task.await;
    if let Some(w) = workers {
        let _ = w.await;
    }
    Ok(())
}
