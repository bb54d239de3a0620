//! The Direct mailbox's IMAP client: each pass logs in, selects the folder, and for every
//! unseen message fetches it (without marking it), keeps and applies it through
//! [`App::receive`] — and only then marks it seen. A crash between the two leaves the message
//! unseen; the next pass fetches it again and the inbox (keyed by its Message-ID) answers that
//! it was kept already, so nothing is lost and nothing applied twice. Plain `imap://` is taken
//! only for a loopback host (a HISP's mailbox is reached over TLS in production; `imaps://`
//! is for a later step).

use futures_util::TryStreamExt;
use refloop_app::{App, AppError, Arrival, Via};
use tokio::net::TcpStream;

use crate::{DirectProtocol, Letter};

/// Where the mailbox is and who reads it.
#[derive(Clone, Debug)]
pub struct MailboxConfig {
    /// `imap://host:port/FOLDER` (loopback only).
    pub url: String,
    pub user: String,
    pub password: String,
}

/// What a pass did: messages fetched, and of those how many were new to the inbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub fetched: usize,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("[direct] imap_url: {0}")]
    Url(String),
    #[error("the mailbox could not be reached: {0}")]
    Connect(std::io::Error),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Host, port and folder of an `imap://` URL; plain IMAP only to a loopback host.
pub fn parse_url(url: &str) -> Result<(String, u16, String), MailboxError> {
    let rest = url
        .strip_prefix("imap://")
        .ok_or_else(|| MailboxError::Url("expected imap://host:port/FOLDER (imaps:// is not built yet)".into()))?;
    let (hostport, folder) = rest.split_once('/').unwrap_or((rest, "INBOX"));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| MailboxError::Url(format!("port {p:?} is not a number")))?),
        None => (hostport, 143),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(MailboxError::Url("plain imap:// only to a loopback host; use TLS elsewhere".into()));
    }
    Ok((host.to_owned(), port, if folder.is_empty() { "INBOX".to_owned() } else { folder.to_owned() }))
}

/// One pass over the mailbox: every unseen message kept and applied, then marked seen.
pub async fn poll_once(app: &App, cfg: &MailboxConfig) -> Result<Pass, MailboxError> {
    let (host, port, folder) = parse_url(&cfg.url)?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(MailboxError::Connect)?;
    let mut client = async_imap::Client::new(tcp);
    let _greeting = client.read_response().await;
    let mut session = client.login(&cfg.user, &cfg.password).await.map_err(|(e, _)| e)?;
    session.select(&folder).await?;
    let mut uids: Vec<u32> = session.uid_search("UNSEEN").await?.into_iter().collect();
    uids.sort_unstable();
    let via = Via { transport: "imap", remote: Some(format!("{host}:{port}")), token: None };
    let mut pass = Pass::default();
    for uid in uids {
        let raw = {
            let fetches: Vec<_> = session.uid_fetch(uid.to_string(), "BODY.PEEK[]").await?.try_collect().await?;
            fetches.iter().find_map(|f| f.body().map(<[u8]>::to_vec))
        };
        let Some(raw) = raw else { continue };
        pass.fetched += 1;
        // Keyed by its Message-ID (a message without one by its place in this folder).
        let control = Letter::read(&raw).and_then(|l| l.message_id).unwrap_or_else(|| format!("{folder}/{uid}"));
        let arrival = Arrival { source: &cfg.user, control_id: &control, message_type: "direct", raw: &raw };
        let (item, new) = app.receive(DirectProtocol::NAME, arrival, &via).await?;
        pass.kept += usize::from(new);
        tracing::info!(inbox_id = %item.id, uid, new, "direct message kept");
        // Only now: the message is safe in the inbox.
        let _: Vec<_> = session.uid_store(uid.to_string(), "+FLAGS (\\Seen)").await?.try_collect().await?;
    }
    session.logout().await?;
    Ok(pass)
}

/// Reads the mailbox every `every` until `shutdown`; a failed pass is logged and tried again
/// sooner (doubling up to `every`).
pub async fn run_mailbox(
    app: App,
    cfg: MailboxConfig,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        let wait = match poll_once(&app, &cfg).await {
            Ok(pass) => {
                backoff = std::time::Duration::from_secs(1);
                if pass.fetched > 0 {
                    tracing::info!(fetched = pass.fetched, kept = pass.kept, "direct mailbox read");
                }
                every
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "direct mailbox not read");
                let w = backoff;
                backoff = (backoff * 2).min(every);
                w
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
