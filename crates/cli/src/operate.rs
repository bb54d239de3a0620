//! Running refloop in production: migrations checked, backups made and restored, and
//! `doctor`, which checks each configured part end to end.

use std::path::Path;

use anyhow::Context;

use crate::config::{Config, redact_url, sqlite_path};

/// `migrate --check`: what `migrate` would apply; fails when anything is pending.
pub async fn migrate_check(config: &Config) -> anyhow::Result<()> {
    let shown = redact_url(&config.database.url);
    let store =
        refloop_store::SqlStore::connect(&config.database.url).await.with_context(|| format!("opening {shown}"))?;
    let status = store.migration_status().await?;
    let applied = status.applied.map_or_else(|| "none".to_owned(), |v| v.to_string());
    println!("{shown}: schema {applied}; this binary migrates to {}", refloop_store::schema_version());
    if !status.unknown.is_empty() {
        println!("  applied by a newer release: {:?}", status.unknown);
    }
    for m in &status.pending {
        println!("  pending: {m}");
    }
    for m in &status.data_pending {
        println!("  pending data migration: {m}");
    }
    if status.up_to_date() {
        println!("up to date");
        Ok(())
    } else {
        anyhow::bail!("{} migrations pending: run refloop migrate", status.pending.len() + status.data_pending.len())
    }
}

/// The PostgreSQL recipe, printed where a SQLite-only command meets a PostgreSQL database.
const PG_RECIPE: &str =
    "PostgreSQL: back up with pg_dump while refloop runs, restore with pg_restore into an empty database:
  pg_dump --format=custom --file=refloop.dump \"$DATABASE_URL\"
  pg_restore --exit-on-error --no-owner --dbname=\"$EMPTY_DATABASE_URL\" refloop.dump
(see the README, Operate)";

fn print_report(path: &Path, r: &refloop_store::FileReport) {
    let counts: Vec<String> = r.counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!("{}: {} bytes, integrity {}", path.display(), r.bytes, r.integrity);
    println!("  {}", counts.join(", "));
}

/// `backup FILE`: a consistent copy of the SQLite database, checked.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    if sqlite_path(&config.database.url).is_none() {
        anyhow::bail!("{PG_RECIPE}");
    }
    let shown = redact_url(&config.database.url);
    let store =
        refloop_store::SqlStore::connect(&config.database.url).await.with_context(|| format!("opening {shown}"))?;
    store.backup_into(file).await.with_context(|| format!("backing up {shown}"))?;
    store.close().await;
    let report = refloop_store::inspect_sqlite_file(file).await.context("checking the backup")?;
    print_report(file, &report);
    if report.integrity != "ok" {
        anyhow::bail!("the backup fails its integrity check");
    }
    println!("backup OK");
    Ok(())
}

/// `restore FILE`: the backup in place of the configured SQLite database, never over one in use.
pub async fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let Some(target) = sqlite_path(&config.database.url) else {
        anyhow::bail!("{PG_RECIPE}");
    };
    let report =
        refloop_store::inspect_sqlite_file(file).await.with_context(|| format!("reading {}", file.display()))?;
    print_report(file, &report);
    let kept = refloop_store::restore_sqlite_file(file, Path::new(target)).await?;
    if let Some(kept) = kept {
        println!("the database it replaced is kept as {}", kept.display());
    }
    println!("restored into {target}; start refloop (pending migrations run at start)");
    Ok(())
}

/// One check's outcome.
enum Outcome {
    Ok(String),
    Fail {
        why: String,
        fix: String,
    },
    /// Not configured: nothing to check.
    Off(String),
}

fn fail(why: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail { why: why.into(), fix: fix.into() }
}

/// Clock difference with the database beyond which `doctor` fails.
const SKEW_MAX_MS: i64 = 5_000;

/// `doctor`: checks each configured part end to end, changing nothing; one line per check.
pub async fn doctor(config: &Config) -> anyhow::Result<()> {
    use refloop_app::Clock;
    let now = refloop_app::SystemClock.now();
    let mut checks: Vec<(&'static str, Outcome)> = Vec::new();
    checks.extend(database_checks(config, now).await);

    checks.push((
        "sms",
        match config.sms() {
            None => Outcome::Off("[sms] mode is not twilio".into()),
            Some((sms, _)) => match refloop_connectors::checks::sms_account(&sms).await {
                Ok(s) => Outcome::Ok(s),
                Err(e) => fail(e, "check [sms] api_base, account_sid and auth_token"),
            },
        },
    ));
    checks.push((
        "direct-relay",
        match config.direct_relay() {
            None => Outcome::Off("[direct] connector is not smtp".into()),
            Some(relay) => match refloop_connectors::checks::smtp_relay(&relay).await {
                Ok(s) => Outcome::Ok(s),
                Err(e) => fail(e, "check [direct] relay_host, relay_port, tls, username and password"),
            },
        },
    ));
    checks.push((
        "fax",
        if config.fax_live() {
            match refloop_connectors::checks::fax_account(&config.fax_api()).await {
                Ok(s) => Outcome::Ok(s),
                Err(e) => fail(e, "check [fax] api_base, api_key and api_secret"),
            }
        } else {
            Outcome::Off("[fax] connector is not http".into())
        },
    ));
    checks.push((
        "ehr",
        match config.ehr_poller_auth() {
            Err(e) => fail(format!("{e:#}"), "fix the [ehr] settings (refloop check-config)"),
            Ok(None) => Outcome::Off("[ehr] base_url is not set".into()),
            Ok(Some(auth)) => match refloop_fhir::EhrClient::new(&config.ehr.base_url, auth).check(now).await {
                Ok(s) => Outcome::Ok(s),
                Err(e @ refloop_fhir::PullError::Auth(_)) => {
                    fail(e.to_string(), "check [ehr] client_id, token_url and private_key (registered with the EHR?)")
                }
                Err(e) => fail(e.to_string(), "check [ehr] base_url and that the EHR's FHIR server is up"),
            },
        },
    ));
    checks.push((
        "direct-mailbox",
        match config.direct_mailbox() {
            Err(e) => fail(format!("{e:#}"), "fix the [direct] imap settings (refloop check-config)"),
            Ok(None) => Outcome::Off("[direct] imap_url is not set".into()),
            Ok(Some(mailbox)) => {
                match tokio::time::timeout(std::time::Duration::from_secs(15), refloop_direct::check_mailbox(&mailbox))
                    .await
                {
                    Ok(Ok(s)) => Outcome::Ok(s),
                    Ok(Err(e)) => fail(e.to_string(), "check [direct] imap_url, imap_user, imap_password and imap_ca"),
                    Err(_) => fail("the mailbox did not answer within 15 s", "check [direct] imap_url"),
                }
            }
        },
    ));
    checks.push(("http-port", port_check(&config.server.http, true).await));
    checks.push(("mllp-port", port_check(&config.server.mllp, false).await));

    let mut failed = 0;
    for (name, outcome) in &checks {
        match outcome {
            Outcome::Ok(s) => println!("OK    {name:<15} {s}"),
            Outcome::Off(s) => println!("off   {name:<15} {s}"),
            Outcome::Fail { why, fix } => {
                failed += 1;
                println!("FAIL  {name:<15} {why}; fix: {fix}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    println!("all checks passed");
    Ok(())
}

/// The database: there, migrated, takes a write; its disk; its clock against ours.
async fn database_checks(config: &Config, now: jiff::Timestamp) -> Vec<(&'static str, Outcome)> {
    use refloop_app::store::Store;
    let shown = redact_url(&config.database.url);
    if let Some(path) = sqlite_path(&config.database.url)
        && !Path::new(path).exists()
    {
        return vec![("database", fail(format!("no database at {path}"), "run refloop migrate, or pass --database"))];
    }
    let connect = refloop_store::SqlStore::connect(&config.database.url);
    let store = match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return vec![("database", fail(format!("{shown}: {e}"), "check [database] url and that the server is up"))];
        }
        Err(_) => {
            return vec![("database", fail(format!("{shown} did not answer within 10 s"), "check [database] url"))];
        }
    };
    let mut out = Vec::new();
    let write = async {
        let mut tx = store.begin().await?;
        tx.probe_write(now).await?;
        tx.commit().await
    };
    out.push((
        "database",
        match (store.migration_status().await, write.await) {
            (Err(e), _) => fail(format!("{shown}: {e}"), "check [database] url"),
            (Ok(s), _) if !s.up_to_date() => {
                fail(format!("{} migrations pending", s.pending.len() + s.data_pending.len()), "run refloop migrate")
            }
            (Ok(_), Err(e)) => {
                fail(format!("{shown} does not take a write: {e}"), "check the disk and the database's permissions")
            }
            (Ok(s), Ok(())) => Outcome::Ok(format!("{shown}: schema {}, takes writes", s.applied.unwrap_or_default())),
        },
    ));
    // The same threshold as the chat's problem notice ([chat] problem_disk_free_percent).
    let disk_free_min = config.problem_settings().map_or(0.10, |s| s.disk_free_min);
    out.push((
        "disk",
        match store.disk_space() {
            None => Outcome::Off("the database is on a server: watch its disk there".into()),
            Some(space) => {
                let free = format!("{:.1} % free ({} MB)", space.free_ratio() * 100.0, space.free / 1_000_000);
                if space.free_ratio() < disk_free_min {
                    fail(free, "free space on the database's disk (back up first: refloop backup)")
                } else {
                    Outcome::Ok(free)
                }
            }
        },
    ));
    out.push((
        "clock",
        match store.database_time().await {
            Err(e) => fail(format!("cannot read the database's clock: {e}"), "check [database] url"),
            Ok(db_now) => {
                let skew = (now - db_now).as_millis() as i64;
                if skew.abs() > SKEW_MAX_MS {
                    fail(
                        format!("this machine is {skew} ms off the database's clock"),
                        "sync both with NTP (timedatectl)",
                    )
                } else {
                    Outcome::Ok(format!("{skew} ms from the database's clock"))
                }
            }
        },
    ));
    store.close().await;
    out
}

/// A listen address: refloop already answers there, or it is free to take.
async fn port_check(addr: &str, http: bool) -> Outcome {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        return fail(format!("{addr} is not an address"), "set [server] http / mllp to HOST:PORT");
    };
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let connect = tokio::net::TcpStream::connect(probe);
    if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        if !http {
            return Outcome::Ok(format!("{addr}: something listens (a running refloop serve?)"));
        }
        // A loopback probe of our own /healthz (its certificate names the public host).
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .danger_accept_invalid_certs(true)
            .build();
        if let Ok(client) = client {
            for scheme in ["http", "https"] {
                if let Ok(resp) = client.get(format!("{scheme}://{probe}/healthz")).send().await
                    && resp.status().is_success()
                {
                    return Outcome::Ok(format!("{addr}: a running refloop answers ({scheme})"));
                }
            }
        }
        return fail(
            format!("{addr}: another program listens there"),
            "stop it or choose another port in [server] http",
        );
    }
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => Outcome::Ok(format!("{addr}: free for serve to listen on")),
        Err(e) => fail(format!("{addr} cannot be taken: {e}"), "free the port or choose another in [server]"),
    }
}
