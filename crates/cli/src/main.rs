//! `refloop`: the referral-loop service and its tools.

mod config;
mod demo;
mod run;

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
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
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
        /// Who or what the token is for.
        #[arg(long)]
        name: String,
    },
}

fn load(common: &Common, http: Option<String>, mllp: Option<String>) -> anyhow::Result<Config> {
    let overrides = Overrides { database: common.database.clone(), http, mllp };
    Config::load(common.config.as_deref(), std::env::vars(), &overrides)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
        Command::Serve { common, http, mllp, demo } => {
            let config = load(&common, http, mllp)?;
            run::init_logging(&config);
            run::serve(config, demo).await
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
            Ok(())
        }
        Command::Token { action: TokenAction::Create { common, role, name } } => {
            let role = refloop_app::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: one of admin, coordinator, viewer, integration"))?;
            let config = load(&common, None, None)?;
            run::init_logging(&config);
            let app = run::build_app(&config).await?;
            let token = app.create_token(&name, role).await?;
            println!("{token}");
            Ok(())
        }
    }
}
