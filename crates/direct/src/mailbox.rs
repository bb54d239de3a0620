//! The Direct mailbox's IMAP client: each pass logs in, selects the folder, and for every
//! unseen message fetches it (without marking it), keeps and applies it through
//! [`App::receive`] — and only then marks it seen. A crash between the two leaves the message
//! unseen; the next pass fetches it again and the inbox (keyed by its Message-ID) answers that
//! it was kept already, so nothing is lost and nothing applied twice. `imaps://` speaks TLS
//! from the start; `imap://` upgrades with STARTTLS (required unless the host is loopback,
//! where a server that offers none is read in the clear) — rustls, trusting the public web
//! roots or the CA in `[direct] imap_ca`, and presenting a client certificate when
//! configured. [`run_mailbox`] keeps the session open and waits in IDLE when the server offers
//! it, so a message is read as it arrives; else it reads every interval.

use futures_util::TryStreamExt;
use refloop_app::{App, AppError, Arrival, Via};
use tokio::net::TcpStream;

use crate::{DirectProtocol, Letter};

/// Where the mailbox is and who reads it.
#[derive(Clone, Debug)]
pub struct MailboxConfig {
    /// `imaps://host:port/FOLDER`, or `imap://…` to a loopback host.
    pub url: String,
    pub user: String,
    pub password: String,
    /// A PEM file of the CA(s) that sign the mailbox's certificate, instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate (PEM chain, PEM key) to present, when the HISP asks for one.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The parts of a mailbox URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxUrl {
    /// `imaps://`: TLS from the first byte; else STARTTLS.
    pub tls: bool,
    /// The host is loopback: a server there that offers no STARTTLS is read in the clear.
    pub loopback: bool,
    pub host: String,
    pub port: u16,
    pub folder: String,
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
    #[error("the mailbox at {0} offers no STARTTLS: use imaps:// (plain IMAP only to a loopback host)")]
    NoStartTls(String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error(transparent)]
    App(#[from] AppError),
}

/// The parts of an `imaps://` or `imap://` (STARTTLS) URL.
pub fn parse_url(url: &str) -> Result<MailboxUrl, MailboxError> {
    let (tls, rest) = match (url.strip_prefix("imaps://"), url.strip_prefix("imap://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(MailboxError::Url(
                "expected imaps://host:port/FOLDER or imap://host:port/FOLDER (STARTTLS)".into(),
            ));
        }
    };
    let (hostport, folder) = rest.split_once('/').unwrap_or((rest, "INBOX"));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| MailboxError::Url(format!("port {p:?} is not a number")))?),
        None => (hostport, if tls { 993 } else { 143 }),
    };
    if host.is_empty() {
        return Err(MailboxError::Url("no host".into()));
    }
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let folder = if folder.is_empty() { "INBOX" } else { folder };
    Ok(MailboxUrl { tls, loopback, host: host.to_owned(), port, folder: folder.to_owned() })
}

/// A TLS client that trusts `cfg.ca_file` (else the public web roots) and presents its client
/// certificate, if any.
fn tls_connector(cfg: &MailboxConfig) -> Result<tokio_rustls::TlsConnector, MailboxError> {
    use tokio_rustls::rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let ca_file = cfg.ca_file.as_deref();
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| MailboxError::Url(format!("imap_ca {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| MailboxError::Url(format!("imap_ca {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| MailboxError::Url(format!("imap_ca {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| MailboxError::Url(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &cfg.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
                MailboxError::Url(format!("{what} {}: {e}", path.display()))
            };
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad("imap_client_cert", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("imap_client_cert", cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("imap_client_key", key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| MailboxError::Url(format!("imap_client_cert: {e}")))?
        }
    };
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// The mailbox's connection, as the IMAP client uses it.
trait ImapStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send> ImapStream for T {}

type Session = async_imap::Session<Box<dyn ImapStream>>;

/// Reads lines until the one tagged `tag`; the untagged lines before it.
async fn tagged<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, tag: &str) -> Result<Vec<String>, MailboxError> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(MailboxError::Connect)? == 0 {
            return Err(MailboxError::Connect(std::io::Error::other("the server closed the connection")));
        }
        if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
            if rest.starts_with("OK") {
                return Ok(lines);
            }
            return Err(MailboxError::Connect(std::io::Error::other(format!("{tag}: {}", rest.trim()))));
        }
        lines.push(line);
    }
}

/// Connects, speaks TLS (from the start, or after STARTTLS), logs in and selects the folder.
/// For `refloop doctor`: connects, signs in, selects the folder and signs out; reads and
/// changes nothing.
pub async fn check_mailbox(cfg: &MailboxConfig) -> Result<String, MailboxError> {
    let (mut session, url) = open(cfg).await?;
    let _ = session.logout().await;
    Ok(format!("signed in to {}:{}, folder {} selected", url.host, url.port, url.folder))
}

async fn open(cfg: &MailboxConfig) -> Result<(Session, MailboxUrl), MailboxError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let url = parse_url(&cfg.url)?;
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(MailboxError::Connect)?;
    let name = || {
        tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| MailboxError::Url(e.to_string()))
    };
    let (stream, greeted): (Box<dyn ImapStream>, bool) = if url.tls {
        (Box::new(tls_connector(cfg)?.connect(name()?, tcp).await.map_err(MailboxError::Connect)?), false)
    } else {
        // The greeting, then whether the server offers STARTTLS; then the upgrade.
        let mut r = tokio::io::BufReader::new(tcp);
        let mut greeting = String::new();
        r.read_line(&mut greeting).await.map_err(MailboxError::Connect)?;
        if !greeting.starts_with("* OK") {
            return Err(MailboxError::Connect(std::io::Error::other("the server did not greet")));
        }
        r.get_mut().write_all(b"s1 CAPABILITY\r\n").await.map_err(MailboxError::Connect)?;
        let caps = tagged(&mut r, "s1").await?;
        let starttls =
            caps.iter().any(|l| l.starts_with("* CAPABILITY") && l.split_whitespace().any(|c| c == "STARTTLS"));
        if starttls {
            r.get_mut().write_all(b"s2 STARTTLS\r\n").await.map_err(MailboxError::Connect)?;
            tagged(&mut r, "s2").await?;
            // Nothing is buffered: the server waits for our TLS hello.
            let tcp = r.into_inner();
            (Box::new(tls_connector(cfg)?.connect(name()?, tcp).await.map_err(MailboxError::Connect)?), true)
        } else if url.loopback {
            (Box::new(r.into_inner()), true)
        } else {
            return Err(MailboxError::NoStartTls(format!("{}:{}", url.host, url.port)));
        }
    };
    let mut client = async_imap::Client::new(stream);
    if !greeted {
        let _greeting = client.read_response().await;
    }
    let mut session = client.login(&cfg.user, &cfg.password).await.map_err(|(e, _)| e)?;
    session.select(&url.folder).await?;
    Ok((session, url))
}

/// One pass over the mailbox: every unseen message kept and applied, then marked seen.
pub async fn poll_once(app: &App, cfg: &MailboxConfig) -> Result<Pass, MailboxError> {
    let (mut session, url) = open(cfg).await?;
    let pass = read_unseen(app, cfg, &url, &mut session).await?;
    session.logout().await?;
    Ok(pass)
}

/// Keeps and applies every unseen message of the selected folder, then marks it seen.
async fn read_unseen(
    app: &App,
    cfg: &MailboxConfig,
    url: &MailboxUrl,
    session: &mut Session,
) -> Result<Pass, MailboxError> {
    let via = Via { transport: "imap", remote: Some(format!("{}:{}", url.host, url.port)), token: None };
    let folder = &url.folder;
    let mut uids: Vec<u32> = session.uid_search("UNSEEN").await?.into_iter().collect();
    uids.sort_unstable();
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
    Ok(pass)
}

/// One session: read what is unseen, then wait — in IDLE when the server offers it (at most
/// `every`, and never past 29 minutes as RFC 2177 asks), else for `every` — and read again,
/// until `stop` resolves (`Ok(true)`) or the connection fails.
async fn session_loop<F: std::future::Future<Output = ()>>(
    app: &App,
    cfg: &MailboxConfig,
    every: std::time::Duration,
    stop: &mut std::pin::Pin<&mut F>,
) -> Result<bool, MailboxError> {
    let (mut session, url) = open(cfg).await?;
    let idle = session.capabilities().await?.has_str("IDLE");
    loop {
        let pass = read_unseen(app, cfg, &url, &mut session).await?;
        app.record_success("direct-mailbox");
        if pass.fetched > 0 {
            tracing::info!(fetched = pass.fetched, kept = pass.kept, idle, "direct mailbox read");
        }
        if !idle {
            tokio::select! {
                _ = stop.as_mut() => { let _ = session.logout().await; return Ok(true); }
                _ = tokio::time::sleep(every) => continue,
            }
        }
        // What the server said outside IDLE — that mail came while we searched and read, or
        // before IDLE began — comes on this channel, not as IDLE's news: once IDLE has begun,
        // any such word means reading again at once.
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        handle.init().await?;
        let arrived = std::iter::from_fn(|| unsolicited.try_recv().ok())
            .filter(|r| matches!(r, async_imap::types::UnsolicitedResponse::Exists(_)))
            .count()
            > 0;
        let wait = if arrived { std::time::Duration::ZERO } else { every.min(std::time::Duration::from_secs(29 * 60)) };
        let stopped = {
            let (idle_wait, _interrupt) = handle.wait_with_timeout(wait);
            tokio::select! {
                _ = stop.as_mut() => true,
                r = idle_wait => { r?; false }
            }
        };
        if stopped {
            // Stopped: `stop` is not to be awaited again.
            if let Ok(mut session) = handle.done().await {
                let _ = session.logout().await;
            }
            return Ok(true);
        }
        session = handle.done().await?;
    }
}

/// Reads the mailbox until `shutdown`: in one session, waiting in IDLE between reads when the
/// server offers it (else every `every`); a failed session is logged and opened again sooner
/// (doubling up to `every`).
pub async fn run_mailbox(
    app: App,
    cfg: MailboxConfig,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(shutdown);
    let mut backoff = std::time::Duration::from_secs(1).min(every);
    loop {
        let began = std::time::Instant::now();
        match session_loop(&app, &cfg, every, &mut stop).await {
            Ok(_) => return,
            Err(e) => {
                // A session that ran a while failed afresh: try again soon.
                if began.elapsed() > every {
                    backoff = std::time::Duration::from_secs(1).min(every);
                }
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "direct mailbox read failed; will try again")
            }
        }
        tokio::select! {
            _ = stop.as_mut() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(every);
    }
}
