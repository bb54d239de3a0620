//! `refloop`: the referral-loop service and its tools.

mod accounts;
mod config;
mod demo;
mod reports;
mod run;
mod tools;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "refloop", version, about = "Closes the loop on patient referrals.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and database come from; every command that reads the
/// database takes these.
#[derive(Args, Clone, Default)]
struct Common {
    /// A TOML configuration file (layered over the embedded defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// sqlite://PATH or postgres://… (overrides [database] url).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP API, workers; migrations run at start.
    Serve {
        #[command(flatten)]
        common: Common,
        /// HTTP listen address (overrides [server] http).
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// MLLP listen address (overrides [server] mllp).
        #[arg(long, value_name = "ADDR")]
        mllp: Option<String>,
        /// Seed an empty database with demo referrals (marked as demo data).
        #[arg(long)]
        demo: bool,
        /// Run `[clock] mode = "manual"` on a database that holds no demo data (tests and
        /// training on a copy): an admin can then move time for every referral.
        #[arg(long)]
        allow_manual_clock: bool,
    },
    /// Simulate a practice: the same referrals and patients run through the real engine twice,
    /// without the workflow (baseline) and with it, and the figures side by side with every
    /// assumption behind them.
    Simulate {
        #[arg(long, default_value_t = 12)]
        providers: u32,
        #[arg(long, default_value_t = 600)]
        referrals_per_month: u32,
        /// Days of orders (outcomes are then followed for 120 more).
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Only these specialties, comma-separated (e.g. cardiology,dermatology).
        #[arg(long, value_delimiter = ',')]
        specialties: Vec<String>,
        /// Keep the workflow run in this database (empty): sqlite://PATH or postgres://…
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Print {"parameters", "baseline", "workflow", "checks"} as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when a figure falls outside the seed article's before/after band.
        #[arg(long)]
        check: bool,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Validate the configuration and print it, secrets hidden.
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Manage the people who sign in to the web UI.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Apply files through the same path as live traffic.
    Import {
        #[command(subcommand)]
        kind: ImportKind,
    },
    /// Referrals for spreadsheets and BI tools: one row per referral with every milestone
    /// time, the days between them and where it leaked.
    Export {
        #[command(subcommand)]
        kind: ExportKind,
    },
    /// Reports: the closure report (closed-loop rate and where referrals leak).
    Report {
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Inbound messages that failed to apply (and the review queue): list, show, retry.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// The audit log: check its hash chain, export it for compliance staff.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Seal new rows, then check every link of the chain; exit 1 naming the first row that was
    /// changed, removed or put out of order.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Write the audit rows of a period as FHIR R4 AuditEvent NDJSON (one resource per line,
    /// oldest first). Dates are local dates in the practice's time zone, both inclusive; a
    /// full timestamp (2026-03-01T08:00:00Z) is taken as it is.
    Export {
        #[command(flatten)]
        common: Common,
        /// From this date (inclusive); default: the first row.
        #[arg(long)]
        from: Option<String>,
        /// To this date (inclusive); default: now.
        #[arg(long)]
        to: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExportKind {
    Referrals {
        #[command(flatten)]
        common: Common,
        /// csv (RFC 4180, a header row) or json (an array of objects)
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only referrals ordered from this day: a date YYYY-MM-DD, local to the practice
        /// ([practice] time_zone) and included, or an RFC 3339 timestamp.
        #[arg(long)]
        from: Option<String>,
        /// Only referrals ordered up to this day: a local date, included (the whole day), or
        /// an RFC 3339 timestamp (up to just before it).
        #[arg(long)]
        to: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportKind {
    /// Closed-loop rate, funnel, leakage by stage and reason, days at each stage, unscheduled
    /// catch rate, for tracked referrals ordered in the period. An open referral within its
    /// current stage's window is in progress, not a leak; the mature rate counts the referrals
    /// ordered [workflow] mature_after (90 days) ago.
    Closure {
        #[command(flatten)]
        common: Common,
        /// First day: a date YYYY-MM-DD, local to the practice ([practice] time_zone) and
        /// included, or an RFC 3339 timestamp; default: the 90 days ending --to. The dashboard
        /// and GET /api/v1/reports/closure read periods the same way.
        #[arg(long)]
        from: Option<String>,
        /// Last day: a local date, included (the whole day), or an RFC 3339 timestamp (the
        /// period ends just before it); default: today.
        #[arg(long)]
        to: Option<String>,
        /// Split by specialty, provider, specialist, network, urgency, week or month.
        #[arg(long)]
        by: Option<String>,
        /// Print the report as JSON (the same as GET /api/v1/reports/closure, described in its
        /// OpenAPI document): closed_loop_rate over all referrals, in_progress and
        /// in_progress_by_stage, mature_referrals and mature_closed_loop_rate, leakage_by_stage …
        #[arg(long)]
        json: bool,
    },
    /// CMS50 (MIPS 374) "Closing the Referral Loop: Receipt of Specialist Report" for a year,
    /// per referring provider and for the practice, from the EHR's FHIR data.
    Cms50 {
        #[command(flatten)]
        common: Common,
        /// The measurement year.
        #[arg(long)]
        year: i16,
        /// Print the report as JSON (the same as GET /api/v1/reports/cms50), with the patients.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ImportKind {
    /// HL7 v2 files: one or more messages each, FHS/BHS batches, `#` comment lines.
    Hl7 {
        #[command(flatten)]
        common: Common,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The specialist directory from CSV: columns id, name, specialties (separated by `;`),
    /// network (in-network, out-of-network, unknown), phone, fax, direct_address,
    /// last_verified (RFC 3339 or YYYY-MM-DD). Bad rows are reported by line; good rows kept.
    Specialists {
        #[command(flatten)]
        common: Common,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Past referrals from CSV, as a baseline: counted in reports, never acted on. Columns
    /// (header row, any order): patient_id, referring_provider, ordered_at (required);
    /// referral_id, specialty, specialist, urgency, network, patient_notified_at, scheduled_at,
    /// appointment_at, attended_at, note_received_at, cancelled_at, closed_at, close_reason.
    /// Times are RFC 3339 or YYYY-MM-DD. Bad rows are reported by line; good rows kept.
    Csv {
        #[command(flatten)]
        common: Common,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// FHIR R4 JSON files: a Bundle (a transaction is all or nothing; other Bundle types
    /// entry by entry), a single resource, or NDJSON (`.ndjson`, Bulk Data export) with one
    /// resource per line.
    Fhir {
        #[command(flatten)]
        common: Common,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Dead letters and review items, newest first.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// One message: its raw text, error and the ACK it got.
    Show {
        #[command(flatten)]
        common: Common,
        id: String,
    },
    /// Apply one again (or every one with --all), e.g. after a configuration fix.
    Retry {
        #[command(flatten)]
        common: Common,
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create an API token and print it once (only its hash is stored).
    Create {
        #[command(flatten)]
        common: Common,
        /// admin, coordinator, viewer or integration.
        #[arg(long)]
        role: String,
        /// Who or what the token is for (for a sender of HL7 over HTTP: its [[hl7.senders]] name).
        #[arg(long)]
        name: String,
        /// How long it works, e.g. `30d` (default `[auth] token_lifetime`, a year).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List the tokens: id, name, role, made, expires, last used (to the minute), status.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a token by its id or name (every live token of that name); it is refused at once.
    Revoke {
        #[command(flatten)]
        common: Common,
        id_or_name: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, or set an existing one's role and password. The password is read from
    /// standard input (one line), e.g. `printf '%s\n' "$PW" | refloop user add alice --role coordinator`.
    Add {
        #[command(flatten)]
        common: Common,
        username: String,
        /// admin, coordinator or viewer.
        #[arg(long)]
        role: String,
    },
    /// List users (never their password hashes).
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Stop a user signing in; their sessions end at once.
    Disable {
        #[command(flatten)]
        common: Common,
        username: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        #[command(flatten)]
        common: Common,
        username: String,
    },
    /// Remove a user's second factor (a lost phone): their sessions end and they enroll again
    /// at their next sign-in if their role requires one.
    ResetMfa {
        #[command(flatten)]
        common: Common,
        username: String,
    },
    /// Lift a lockout after failed sign-ins before it runs out.
    Unlock {
        #[command(flatten)]
        common: Common,
        username: String,
    },
}

fn load(common: &Common, http: Option<String>, mllp: Option<String>) -> anyhow::Result<Config> {
    let overrides = Overrides { database: common.database.clone(), http, mllp };
    Config::load(common.config.as_deref(), std::env::vars(), &overrides)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // TLS for outbound HTTPS (the EHR's FHIR server, its token endpoint).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { common, http, mllp, demo, allow_manual_clock } => {
            let config = load(&common, http, mllp)?;
            run::init_logging(&config);
            run::serve(config, demo, allow_manual_clock).await
        }
        Command::Simulate { providers, referrals_per_month, days, seed, specialties, database, json, check } => {
            let mut p = refloop_sim::Params { providers, referrals_per_month, days, seed, ..Default::default() };
            if !specialties.is_empty() {
                p.only_specialties(&specialties).map_err(|e| anyhow::anyhow!("--specialties: {e}"))?;
            }
            tools::simulate(&p, database.as_deref(), json, check).await
        }
        Command::Migrate { common } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            run::open_store(&config).await?;
            println!("migrations applied to {}", config::redact_url(&config.database.url));
            Ok(())
        }
        Command::CheckConfig { common } => {
            let config = load(&common, None, None)?;
            print!("{}", config.redacted_toml());
            println!("# configuration OK");
            for warning in config.warnings() {
                println!("# warning: {warning}");
            }
            tools::print_channels(&config).await
        }
        Command::Import { kind: ImportKind::Hl7 { common, files } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            tools::import_hl7(&config, &files).await
        }
        Command::Import { kind: ImportKind::Specialists { common, file } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            tools::import_specialists(&config, &file).await
        }
        Command::Import { kind: ImportKind::Csv { common, files } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            tools::import_csv(&config, &files).await
        }
        Command::Import { kind: ImportKind::Fhir { common, files } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            tools::import_fhir(&config, &files).await
        }
        Command::Export { kind: ExportKind::Referrals { common, format, from, to, output } } => {
            let config = load(&common, None, None)?;
            reports::export_referrals(&config, &format, from.as_deref(), to.as_deref(), output.as_deref()).await
        }
        Command::Report { kind: ReportKind::Closure { common, from, to, by, json } } => {
            let config = load(&common, None, None)?;
            reports::report_closure(&config, from.as_deref(), to.as_deref(), by.as_deref(), json).await
        }
        Command::Report { kind: ReportKind::Cms50 { common, year, json } } => {
            reports::report_cms50(&load(&common, None, None)?, year, json).await
        }
        Command::DeadLetters { action } => match action {
            DeadLetterAction::List { common } => {
                let config = load(&common, None, None)?;
                run::init_logging(&config);
                tools::dead_letters_list(&config).await
            }
            DeadLetterAction::Show { common, id } => {
                let config = load(&common, None, None)?;
                run::init_logging(&config);
                tools::dead_letter_show(&config, &id).await
            }
            DeadLetterAction::Retry { common, id, all } => {
                let config = load(&common, None, None)?;
                run::init_logging(&config);
                tools::dead_letters_retry(&config, id.as_deref(), all).await
            }
        },
        Command::Audit { action: AuditAction::Verify { common } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            reports::audit_verify(&run::build_app(&config).await?).await
        }
        Command::Audit { action: AuditAction::Export { common, from, to, output } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            let app = run::build_app(&config).await?;
            reports::audit_export(&app, from.as_deref(), to.as_deref(), output.as_deref()).await
        }
        Command::User { action } => match action {
            UserAction::Add { common, username, role } => {
                accounts::user_add(&load(&common, None, None)?, &username, &role).await
            }
            UserAction::List { common } => accounts::user_list(&load(&common, None, None)?).await,
            UserAction::Disable { common, username } => {
                accounts::user_disable(&load(&common, None, None)?, &username, true).await
            }
            UserAction::Enable { common, username } => {
                accounts::user_disable(&load(&common, None, None)?, &username, false).await
            }
            UserAction::ResetMfa { common, username } => {
                let app = run::build_app(&load(&common, None, None)?).await?;
                app.mfa_reset(&username, &refloop_app::Actor::system("cli")).await?;
                println!(
                    "user {username}: second factor removed and sessions ended; they enrol again at their next sign-in"
                );
                Ok(())
            }
            UserAction::Unlock { common, username } => {
                let app = run::build_app(&load(&common, None, None)?).await?;
                app.unlock_user(&username, &refloop_app::Actor::system("cli")).await?;
                println!("user {username} unlocked");
                Ok(())
            }
        },
        Command::Token { action: TokenAction::Create { common, role, name, expires_in } } => {
            let role = refloop_app::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: one of admin, coordinator, viewer, integration"))?;
            let config = load(&common, None, None)?;
            let lifetime = match expires_in {
                Some(span) => {
                    span.parse::<refloop_domain::Duration>().map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?
                }
                None => config.auth.token_lifetime,
            };
            run::init_logging(&config);
            let app = run::build_app(&config).await?;
            let token = app.create_token(&name, role, Some(app.now() + lifetime.to_signed())).await?;
            println!("{token}");
            Ok(())
        }
        Command::Token { action: TokenAction::List { common } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            accounts::token_list(&run::build_app(&config).await?).await
        }
        Command::Token { action: TokenAction::Revoke { common, id_or_name } } => {
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            let app = run::build_app(&config).await?;
            let revoked = app.revoke_token(&id_or_name, &refloop_app::Actor::system("cli")).await?;
            if revoked.is_empty() {
                anyhow::bail!("no live token has the id or name {id_or_name:?}");
            }
            println!("revoked {}", revoked.join(", "));
            Ok(())
        }
    }
}
