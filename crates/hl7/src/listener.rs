//! The MLLP listener: many connections at once, messages on one connection answered in
//! order, idle connections closed, oversized frames refused; over TLS when configured.

use std::{future::Future, net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use refloop_app::{
    Via,
    admission::{Admission, ConnectionLimits},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::codec::Framed;

use crate::{
    ack::{AckCode, AckError, ErrorCode, build_ack},
    ingest::Ingest,
    message::parse,
    mllp::{MllpCodec, MllpError},
    senders::Origin,
};

#[derive(Clone)]
pub struct ListenerConfig {
    /// Largest message accepted, in bytes.
    pub max_message: usize,
    /// A connection with no message for this long is closed.
    pub idle_timeout: Duration,
    /// A message whose first bytes came must be complete within this, or the connection is closed.
    pub frame_timeout: Duration,
    /// When set, every connection is TLS (see [`crate::tls_acceptor`]); plain MLLP is refused.
    pub tls: Option<TlsAcceptor>,
    /// Open connections at most, in all and from one address; beyond them a new connection
    /// is closed at once.
    pub connections: ConnectionLimits,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_message: 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            tls: None,
            connections: ConnectionLimits::default(),
        }
    }
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("max_message", &self.max_message)
            .field("idle_timeout", &self.idle_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("tls", &self.tls.is_some())
            .field("connections", &self.connections)
            .finish()
    }
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts MLLP connections on `listener` until `shutdown` resolves; then stops accepting
/// and lets each connection finish the message it is on.
pub async fn serve_mllp(
    ingest: Ingest,
    listener: TcpListener,
    cfg: ListenerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let admission = Admission::new(cfg.connections);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            (stream, peer, admitted) = admission.accept(&listener, "MLLP", "refloop_mllp_connections_refused_total") => {
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, "MLLP connection opened");
                let ingest = ingest.clone();
                let stop = stop_rx.clone();
                let cfg = cfg.clone();
                connections.spawn(async move {
                    let _admitted = admitted;
                    let codec = MllpCodec::new(cfg.max_message);
                    match &cfg.tls {
                        None => connection(ingest, Framed::new(stream, codec), &cfg, peer, None, stop).await,
                        Some(tls) => {
                            let timeout = HANDSHAKE_TIMEOUT.min(cfg.idle_timeout);
                            if let Some(stream) = handshake(tls, stream, timeout, peer).await {
                                // The client certificate's subject, when it presented one.
                                let subject = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|leaf| crate::senders::certificate_subject(leaf));
                                connection(ingest, Framed::new(stream, codec), &cfg, peer, subject, stop).await;
                            }
                        }
                    }
                    tracing::debug!(%peer, "MLLP connection closed");
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The TLS handshake with a sender; `None` (logged and counted) when it fails or stalls.
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    // Fallible: a refused sender's socket is kept until it is counted, then closed.
    let (reason, error, socket) = match tokio::time::timeout(timeout, tls.accept(stream).into_fallible()).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err((e, socket))) => ("handshake", e.to_string(), Some(socket)),
        Err(_) => ("timeout", "no handshake in time".to_owned(), None),
    };
    metrics::counter!("refloop_mllp_tls_refused_total", "reason" => reason).increment(1);
    tracing::warn!(%peer, %error, "MLLP TLS handshake failed");
    drop(socket);
    None
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    ingest: Ingest,
    mut framed: Framed<S, MllpCodec>,
    cfg: &ListenerConfig,
    peer: SocketAddr,
    subject: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    // Checked a few times per timeout: a connection is closed when it has sent nothing for
    // `idle_timeout`, or when a message it started has not been completed within
    // `frame_timeout` (bytes trickled in to hold the connection).
    let tick = cfg.idle_timeout.min(cfg.frame_timeout) / 4;
    let mut idle_since = tokio::time::Instant::now();
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            next = tokio::time::timeout(tick, framed.next()) => next,
        };
        if next.is_err() {
            let now = tokio::time::Instant::now();
            if framed.read_buffer().is_empty() {
                partial_since = None;
                if now - idle_since >= cfg.idle_timeout {
                    return; // idle
                }
            } else if now - *partial_since.get_or_insert(now) >= cfg.frame_timeout {
                metrics::counter!("refloop_mllp_stalled_frames_total").increment(1);
                tracing::warn!(%peer, "MLLP message not completed within the frame timeout; closing the connection");
                return;
            }
            continue;
        }
        (idle_since, partial_since) = (tokio::time::Instant::now(), None);
        let frame = match next {
            Err(_) => return,
            Ok(None) => return,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(MllpError::TooLarge(max)))) => {
                tracing::warn!(max, "MLLP frame too large; closing the connection");
                let err =
                    AckError::new(ErrorCode::InternalError, format!("messages larger than {max} bytes are refused"));
                let ack = build_ack(Err(&[][..]), AckCode::AR, Some(&err), "REFLOOP", "");
                let _ = framed.send(ack.as_bytes()).await;
                return;
            }
            Ok(Some(Err(MllpError::Io(e)))) => {
                tracing::debug!(error = %e, "MLLP read failed");
                return;
            }
        };
        if let Some(refused) = ingest.refuse_unknown(&frame, Origin::Mllp(peer.ip(), subject.as_deref())) {
            if framed.send(refused).await.is_err() {
                return;
            }
            continue;
        }
        let reply = match ingest.receive(&frame, &Via::mllp(Some(peer.ip().to_string()))).await {
            Ok(reply) => {
                // Enhanced mode: the application acknowledgement follows the accept one.
                if let Some(ack) = reply.ack
                    && framed.send(ack).await.is_err()
                {
                    return;
                }
                reply.application_ack
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store an HL7 message; answering AR");
                let err = AckError::new(
                    ErrorCode::InternalError,
                    "storage unavailable: the message was not kept; resend later",
                );
                let ack = match parse(&frame) {
                    Ok(m) => build_ack(Ok(&m), AckCode::AR, Some(&err), "REFLOOP", ""),
                    Err(_) => build_ack(Err(&frame), AckCode::AR, Some(&err), "REFLOOP", ""),
                };
                Some(ack.into_bytes())
            }
        };
        if let Some(ack) = reply
            && framed.send(ack).await.is_err()
        {
            return;
        }
    }
}
