//! Checks for `refloop doctor`: each reaches a provider with the configured credentials and
//! changes nothing (an account read, a connection and sign-in). `Err` is the reason, with no
//! secret in it.

use std::time::Duration;

use crate::{DirectConfig, FaxConfig, TwilioConfig};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}

/// What an HTTP status says about credentials.
fn refused(status: reqwest::StatusCode) -> String {
    match status.as_u16() {
        401 | 403 => format!("the credentials were refused ({status})"),
        _ => format!("the API answered {status}"),
    }
}

/// GETs `url` with basic auth: the answer when 2xx, else why not.
async fn get_with(url: &str, base: &str, user: &str, secret: &str) -> Result<reqwest::Response, String> {
    let resp = client()
        .get(url)
        .basic_auth(user, Some(secret))
        .send()
        .await
        .map_err(|e| format!("cannot reach {base}: {}", e.without_url()))?;
    if resp.status().is_success() { Ok(resp) } else { Err(refused(resp.status())) }
}

/// The SMS API: fetches the account (Twilio `GET /2010-04-01/Accounts/{sid}.json`).
pub async fn sms_account(cfg: &TwilioConfig) -> Result<String, String> {
    let url = format!("{}/2010-04-01/Accounts/{}.json", cfg.api_base.trim_end_matches('/'), cfg.account_sid);
    let resp = get_with(&url, &cfg.api_base, &cfg.account_sid, &cfg.auth_token).await?;
    let body: serde_json::Value = resp.json().await.map_err(|_| "the account answer is not JSON".to_owned())?;
    match body["status"].as_str() {
        Some("active") | None => Ok(format!("account {} active", cfg.account_sid)),
        Some(other) => Err(format!("account {} is {other}", cfg.account_sid)),
    }
}

/// The fax API: reads the account's status (Phaxio-style `GET /v2.1/account/status`).
pub async fn fax_account(cfg: &FaxConfig) -> Result<String, String> {
    let url = format!("{}/v2.1/account/status", cfg.api_base.trim_end_matches('/'));
    get_with(&url, &cfg.api_base, &cfg.api_key, &cfg.api_secret).await?;
    Ok("the API took the credentials".to_owned())
}

/// The HISP relay: connects, greets and (with credentials) signs in; sends nothing.
pub async fn smtp_relay(cfg: &DirectConfig) -> Result<String, String> {
    let transport = cfg.transport(Duration::from_secs(10)).map_err(|_| "the relay host is not valid".to_owned())?;
    match transport.test_connection().await {
        Ok(true) => Ok(format!(
            "{}:{} answered{}",
            cfg.relay_host,
            cfg.relay_port,
            if cfg.username.is_empty() { "" } else { " and took the credentials" }
        )),
        Ok(false) => Err(format!("{}:{} did not answer as an SMTP server", cfg.relay_host, cfg.relay_port)),
        Err(e) => Err(match e.status() {
            Some(code) => format!("{}:{} refused ({code})", cfg.relay_host, cfg.relay_port),
            None => format!("cannot connect to {}:{}: {e}", cfg.relay_host, cfg.relay_port),
        }),
    }
}
