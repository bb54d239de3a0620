//! The Direct mailbox's IMAP client: each pass logs in, selects the folder, and for every
//! unseen message fetches it (without marking it), keeps and applies it through
//! [`App::receive`] — and only then marks it seen. A crash between the two leaves the message
//! unseen; the next pass fetches it again and the inbox (keyed by its Message-ID) answers that
//! it was kept already, so nothing is lost and nothing applied twice. `imaps://` speaks TLS
//! (rustls; the public web roots, or the CA in `[direct] imap_ca`); plain `imap://` is taken
//! only for a loopback host.

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
}

/// The parts of a mailbox URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxUrl {
    pub tls: bool,
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
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error(transparent)]
    App(#[from] AppError),
}

/// The parts of an `imaps://` or `imap://` URL; plain IMAP only to a loopback host.
pub fn parse_url(url: &str) -> Result<MailboxUrl, MailboxError> {
    let (tls, rest) = match (url.strip_prefix("imaps://"), url.strip_prefix("imap://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(MailboxError::Url("expected imaps://host:port/FOLDER (or imap:// to a loopback host)".into())),
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
    if !tls && !loopback {
        return Err(MailboxError::Url("plain imap:// only to a loopback host; use imaps://".into()));
    }
    let folder = if folder.is_empty() { "INBOX" } else { folder };
    Ok(MailboxUrl { tls, host: host.to_owned(), port, folder: folder.to_owned() })
}

/// A TLS client that trusts `ca_file`, or the public web roots.
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, MailboxError> {
    use tokio_rustls::rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, pem::PemObject},
    };
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
    let config = ClientConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| MailboxError::Url(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// One pass over the mailbox: every unseen message kept and applied, then marked seen.
pub async fn poll_once(app: &App, cfg: &MailboxConfig) -> Result<Pass, MailboxError> {
    let url = parse_url(&cfg.url)?;
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(MailboxError::Connect)?;
    let via = Via { transport: "imap", remote: Some(format!("{}:{}", url.host, url.port)), token: None };
    if url.tls {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| MailboxError::Url(e.to_string()))?;
        let stream = tls_connector(cfg.ca_file.as_deref())?.connect(name, tcp).await.map_err(MailboxError::Connect)?;
        pass(app, cfg, &url.folder, &via, stream).await
    } else {
        pass(app, cfg, &url.folder, &via, tcp).await
    }
}

async fn pass<S>(app: &App, cfg: &MailboxConfig, folder: &str, via: &Via, stream: S) -> Result<Pass, MailboxError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut client = async_imap::Client::new(stream);
    let _greeting = client.read_response().await;
    let mut session = client.login(&cfg.user, &cfg.password).await.map_err(|(e, _)| e)?;
    session.select(folder).await?;
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
        let (item, new) = app.receive(DirectProtocol::NAME, arrival, via).await?;
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
    refloop_app::every("direct mailbox read", every, shutdown, || async {
        let pass = poll_once(&app, &cfg).await?;
        if pass.fetched > 0 {
            tracing::info!(fetched = pass.fetched, kept = pass.kept, "direct mailbox read");
        }
        Ok::<(), MailboxError>(())
    })
    .await
}
