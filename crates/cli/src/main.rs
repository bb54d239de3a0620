//! `refloop`: the referral-loop service and its tools.

mod accounts;
mod config;
mod demo;
mod logging;
mod operate;
mod reports;
mod run;
mod tools;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "refloop", about = "Closes the loop on patient referrals.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Where the configuration and database come from; every command that reads the database
// takes these. (A plain comment: a doc comment here would become each command's about.)
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
    /// Run the service: HTTP API, MLLP listener, workers; pending migrations run at start
    /// (one process at a time).
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
        /// Referring providers in the practice.
        #[arg(long, default_value_t = 12)]
        providers: u32,
        /// Referrals the practice orders a month.
        #[arg(long, default_value_t = 600)]
        referrals_per_month: u32,
        /// Days of orders (outcomes are then followed for 120 more).
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// The random seed: the same seed gives the same practice and the same figures.
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
        /// What-if: the workflow's texts carry a link to book (the assumptions are printed).
        #[arg(long)]
        with_booking_links: bool,
        /// What-if: the workflow's texts go in the patient's language (the assumptions are printed).
        #[arg(long)]
        with_languages: bool,
    },
    /// Apply database migrations and exit (or, with --check, only say what is pending).
    Migrate {
        #[command(flatten)]
        common: Common,
        /// Change nothing: list the pending migrations and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Copy a SQLite database while refloop keeps running (one consistent snapshot), check
    /// the copy and print its size and row counts. For PostgreSQL, prints the pg_dump recipe.
    Backup {
        #[command(flatten)]
        common: Common,
        /// The new file to write (it must not exist).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Put a SQLite backup in place of the configured database, after checking it. Refused
    /// while any process has the database open: stop refloop first. The database replaced is
    /// kept beside it as `….before-restore`.
    Restore {
        #[command(flatten)]
        common: Common,
        /// The backup file (from `refloop backup`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check each configured part end to end without changing anything: the database
    /// (there, migrated, takes a write), its disk, the clock against the database's, the SMS
    /// API's credentials, the Direct relay, the fax API, the EHR's FHIR metadata and SMART
    /// token, the Direct mailbox sign-in, the HTTP and MLLP ports. One line per check with OK
    /// or FAIL and the fix; exit 1 when any fails.
    Doctor {
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
    /// One row per referral: every milestone time, the days between them, where it leaked.
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
        /// HL7 v2 files to apply, in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The specialist directory from CSV: columns id, name, specialties (separated by `;`),
    /// network (in-network, out-of-network, unknown), phone, fax, direct_address,
    /// last_verified (RFC 3339 or YYYY-MM-DD). Bad rows are reported by line; good rows kept.
    Specialists {
        #[command(flatten)]
        common: Common,
        /// The directory CSV file (a header row).
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
        /// CSV files of past referrals (each with a header row).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// FHIR R4 JSON files: a Bundle (a transaction is all or nothing; other Bundle types
    /// entry by entry), a single resource, or NDJSON (`.ndjson`, Bulk Data export) with one
    /// resource per line.
    Fhir {
        #[command(flatten)]
        common: Common,
        /// FHIR JSON or NDJSON files.
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
        /// The inbound message's id (from `dead-letters list`).
        id: String,
    },
    /// Apply one again (or every one with --all), e.g. after a configuration fix.
    Retry {
        #[command(flatten)]
        common: Common,
        /// The inbound message's id (from `dead-letters list`).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter and review item.
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
        /// The token's id (from `token list`) or its name.
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
        /// The name they sign in with.
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
        /// The name they sign in with.
        username: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        #[command(flatten)]
        common: Common,
        /// The name they sign in with.
        username: String,
    },
    /// Remove a user's second factor (a lost phone): their sessions end and they enroll again
    /// at their next sign-in if their role requires one.
    ResetMfa {
        #[command(flatten)]
        common: Common,
        /// The name they sign in with.
        username: String,
    },
    /// Lift a lockout after failed sign-ins before it runs out.
    Unlock {
        #[command(flatten)]
        common: Common,
        /// The name they sign in with.
        username: String,
    },
}

/// Reads the configuration and then sets logging to its level and format.
struct Loader {
    logging: logging::Logging,
}

impl Loader {
    fn load(&self, common: &Common, http: Option<String>, mllp: Option<String>) -> anyhow::Result<Config> {
        let overrides = Overrides { database: common.database.clone(), http, mllp };
        let config = Config::load(common.config.as_deref(), std::env::vars(), &overrides)?;
        self.logging.configure(&config);
        Ok(config)
    }

    /// The configuration of a command that works on an existing database: a SQLite file that
    /// is not there is refused rather than created empty (which would report zeros).
    fn existing(&self, common: &Common) -> anyhow::Result<Config> {
        let config = self.load(common, None, None)?;
        if let Some(path) = config::sqlite_path(&config.database.url)
            && !std::path::Path::new(path).exists()
        {
            anyhow::bail!("no database at {path}; pass --database or run refloop migrate");
        }
        Ok(config)
    }
}

/// `0.1.0 (git 1a2b3c4d5e, schema 26)`.
fn version() -> &'static str {
    let text = format!(
        "{} (git {}, schema {})",
        env!("CARGO_PKG_VERSION"),
        env!("GIT_REVISION"),
        refloop_store::schema_version()
    );
    Box::leak(text.into_boxed_str())
}

fn main() -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().version(version()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let loader = Loader { logging: logging::init() };
    // TLS for outbound HTTPS (the EHR's FHIR server, its token endpoint).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, &loader)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, ld: &Loader) -> anyhow::Result<()> {
    match command {
        Command::Serve { common, http, mllp, demo, allow_manual_clock } => {
            let config = ld.load(&common, http, mllp)?;
            run::serve(config, demo, allow_manual_clock).await
        }
        Command::Simulate {
            providers,
            referrals_per_month,
            days,
            seed,
            specialties,
            database,
            json,
            check,
            with_booking_links,
            with_languages,
        } => {
            let mut p = refloop_sim::Params {
                providers,
                referrals_per_month,
                days,
                seed,
                booking_links: with_booking_links,
                languages: with_languages,
                ..Default::default()
            };
            if !specialties.is_empty() {
                p.only_specialties(&specialties).map_err(|e| anyhow::anyhow!("--specialties: {e}"))?;
            }
            tools::simulate(&p, database.as_deref(), json, check).await
        }
        Command::Migrate { common, check: false } => {
            let config = ld.load(&common, None, None)?;
            run::open_store(&config).await?;
            println!("migrations applied to {}", config::redact_url(&config.database.url));
            Ok(())
        }
        Command::Migrate { common, check: true } => operate::migrate_check(&ld.existing(&common)?).await,
        Command::Doctor { common } => operate::doctor(&ld.load(&common, None, None)?).await,
        Command::Backup { common, file } => operate::backup(&ld.existing(&common)?, &file).await,
        Command::Restore { common, file } => operate::restore(&ld.load(&common, None, None)?, &file).await,
        Command::CheckConfig { common } => {
            let config = ld.load(&common, None, None)?;
            print!("{}", config.redacted_toml());
            println!("# configuration OK");
            let policy = config.policy()?;
            // "Today" is the manual clock's start when the configuration sets one.
            let now = match config.clock_mode()? {
                config::ClockMode::Manual { start: Some(start) } => start,
                _ => refloop_app::Clock::now(&refloop_app::SystemClock),
            };
            let today = now.to_zoned_datetime(policy.time_zone.clone()).date();
            for line in policy.calendar_lines(today) {
                println!("# {line}");
            }
            for warning in config.warnings() {
                println!("# warning: {warning}");
            }
            tools::print_channels(&config).await
        }
        Command::Import { kind: ImportKind::Hl7 { common, files } } => {
            let config = ld.existing(&common)?;
            tools::import_hl7(&config, &files).await
        }
        Command::Import { kind: ImportKind::Specialists { common, file } } => {
            let config = ld.existing(&common)?;
            tools::import_specialists(&config, &file).await
        }
        Command::Import { kind: ImportKind::Csv { common, files } } => {
            let config = ld.existing(&common)?;
            tools::import_csv(&config, &files).await
        }
        Command::Import { kind: ImportKind::Fhir { common, files } } => {
            let config = ld.existing(&common)?;
            tools::import_fhir(&config, &files).await
        }
        Command::Export { kind: ExportKind::Referrals { common, format, from, to, output } } => {
            let config = ld.existing(&common)?;
            reports::export_referrals(&config, &format, from.as_deref(), to.as_deref(), output.as_deref()).await
        }
        Command::Report { kind: ReportKind::Closure { common, from, to, by, json } } => {
            let config = ld.existing(&common)?;
            reports::report_closure(&config, from.as_deref(), to.as_deref(), by.as_deref(), json).await
        }
        Command::Report { kind: ReportKind::Cms50 { common, year, json } } => {
            reports::report_cms50(&ld.existing(&common)?, year, json).await
        }
        Command::DeadLetters { action } => match action {
            DeadLetterAction::List { common } => {
                let config = ld.existing(&common)?;
                tools::dead_letters_list(&config).await
            }
            DeadLetterAction::Show { common, id } => {
                let config = ld.existing(&common)?;
                tools::dead_letter_show(&config, &id).await
            }
            DeadLetterAction::Retry { common, id, all } => {
                let config = ld.existing(&common)?;
                tools::dead_letters_retry(&config, id.as_deref(), all).await
            }
        },
        Command::Audit { action: AuditAction::Verify { common } } => {
            let config = ld.existing(&common)?;
            reports::audit_verify(&run::build_app(&config).await?).await
        }
        Command::Audit { action: AuditAction::Export { common, from, to, output } } => {
            let config = ld.existing(&common)?;
            let app = run::build_app(&config).await?;
            reports::audit_export(&app, from.as_deref(), to.as_deref(), output.as_deref()).await
        }
        Command::User { action } => match action {
            UserAction::Add { common, username, role } => {
                accounts::user_add(&ld.existing(&common)?, &username, &role).await
            }
            UserAction::List { common } => accounts::user_list(&ld.existing(&common)?).await,
            UserAction::Disable { common, username } => {
                accounts::user_disable(&ld.existing(&common)?, &username, true).await
            }
            UserAction::Enable { common, username } => {
                accounts::user_disable(&ld.existing(&common)?, &username, false).await
            }
            UserAction::ResetMfa { common, username } => {
                let app = run::build_app(&ld.existing(&common)?).await?;
                app.mfa_reset(&username, &refloop_app::Actor::system("cli")).await?;
                println!(
                    "user {username}: second factor removed and sessions ended; they enrol again at their next sign-in"
                );
                Ok(())
            }
            UserAction::Unlock { common, username } => {
                let app = run::build_app(&ld.existing(&common)?).await?;
                app.unlock_user(&username, &refloop_app::Actor::system("cli")).await?;
                println!("user {username} unlocked");
                Ok(())
            }
        },
        Command::Token { action: TokenAction::Create { common, role, name, expires_in } } => {
            let role = refloop_app::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: one of admin, coordinator, viewer, integration"))?;
            let config = ld.existing(&common)?;
            let lifetime = match expires_in {
                Some(span) => {
                    span.parse::<refloop_domain::Duration>().map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?
                }
                None => config.auth.token_lifetime,
            };
            let app = run::build_app(&config).await?;
            let token = app.create_token(&name, role, Some(app.now() + lifetime.to_signed())).await?;
            println!("{token}");
            Ok(())
        }
        Command::Token { action: TokenAction::List { common } } => {
            let config = ld.existing(&common)?;
            accounts::token_list(&run::build_app(&config).await?).await
        }
        Command::Token { action: TokenAction::Revoke { common, id_or_name } } => {
            let config = ld.existing(&common)?;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command says what it does and every option what it takes (`--help` reads them).
    #[test]
    fn every_command_and_option_is_described() {
        fn walk(c: &clap::Command, path: String, missing: &mut Vec<String>) {
            if c.get_about().is_none() {
                missing.push(path.clone());
            }
            for a in c.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if a.get_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, format!("{path} {}", s.get_name()), missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "refloop".into(), &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:?}");
    }
}
