//! `user` and `token`: the people who sign in and the API tokens.

use anyhow::Context;

use crate::{config::Config, run};

pub async fn user_add(config: &Config, username: &str, role: &str) -> anyhow::Result<()> {
    let role = refloop_app::Role::parse(role)
        .filter(|r| *r != refloop_app::Role::Integration)
        .ok_or_else(|| anyhow::anyhow!("--role: one of admin, coordinator, viewer"))?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let app = run::build_app(config).await?;
    let user = app.save_user(username, role, password).await?;
    println!("user {} saved with role {}", user.username, user.role.as_str());
    Ok(())
}

pub async fn user_list(config: &Config) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    for u in app.users().await? {
        let status = if u.disabled { "disabled" } else { "active" };
        let two_step = if u.totp_secret.is_some() { "two-step" } else { "password only" };
        println!("{}\t{}\t{status}\t{two_step}\tupdated {}", u.username, u.role.as_str(), u.updated_at);
    }
    Ok(())
}

pub async fn user_disable(config: &Config, username: &str, disabled: bool) -> anyhow::Result<()> {
    let app = run::build_app(config).await?;
    let user = app.set_user_disabled(username, disabled).await?;
    println!("user {} {}", user.username, if user.disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// `token list`: one line per token, tab-separated, never the token or its hash.
pub async fn token_list(app: &refloop_app::App) -> anyhow::Result<()> {
    let now = app.now();
    let at =
        |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M").to_string());
    println!("id\tname\trole\tcreated\texpires\tlast used\tstatus");
    for t in app.tokens().await? {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if !t.is_live(now) {
            "expired"
        } else {
            "live"
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{status}",
            t.id,
            t.name,
            t.role.as_str(),
            at(Some(t.created_at)),
            at(t.expires_at),
            at(t.last_used_at)
        );
    }
    Ok(())
}
