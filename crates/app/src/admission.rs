//! Admission for the network listeners (HTTP and MLLP): at most so many connections in all
//! and so many from one address, so that idle or trickling connections cannot take the
//! service from everyone else.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Connection caps: in all, and from one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub total: usize,
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { total: 1024, per_address: 64 }
    }
}

/// Counts open connections against [`ConnectionLimits`].
#[derive(Clone, Debug)]
pub struct Admission {
    limits: ConnectionLimits,
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

/// An admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Admitted {
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
    from: IpAddr,
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerAddress,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerAddress => "per-address",
        }
    }
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self { limits, open: Arc::default() }
    }

    /// Admits a connection from `from`, or says which cap it would pass.
    pub fn admit(&self, from: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.0 >= self.limits.total {
            return Err(Refused::Total);
        }
        let mine = open.1.entry(from).or_default();
        if *mine >= self.limits.per_address {
            return Err(Refused::PerAddress);
        }
        *mine += 1;
        open.0 += 1;
        Ok(Admitted { open: self.open.clone(), from })
    }
}

impl Admission {
    /// The next connection on `listener` within the caps. One beyond them is closed at once,
    /// counted (`metric{reason}`) and logged with its address; a failed accept is logged.
    /// Cancel-safe: nothing is awaited after a connection is taken.
    pub async fn accept(
        &self,
        listener: &tokio::net::TcpListener,
        what: &'static str,
        metric: &'static str,
    ) -> (tokio::net::TcpStream, std::net::SocketAddr, Admitted) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept failed");
                    continue;
                }
            };
            match self.admit(peer.ip()) {
                Ok(admitted) => return (stream, peer, admitted),
                Err(why) => {
                    metrics::counter!(metric, "reason" => why.as_str()).increment(1);
                    tracing::warn!(%peer, reason = why.as_str(), "{what} connection turned away: too many open");
                }
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.from) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_address_and_places_come_back() {
        let a = Admission::new(ConnectionLimits { total: 3, per_address: 2 });
        let (x, y): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = a.admit(x).unwrap();
        let _second = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refused::PerAddress);
        let _third = a.admit(y).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Refused::Total);
        drop(first);
        assert!(a.admit(x).is_ok(), "a closed connection gives its place back");
    }
}
