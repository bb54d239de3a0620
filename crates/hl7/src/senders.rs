//! Who may send us HL7: each known sender is named, with the sending application and
//! facility it puts in MSH-3 and MSH-4, and the networks it connects from. A message from
//! anyone else is refused (AR, ERR code 207 "unknown sender") before anything is stored.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// One known sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// Its name: the name of the API token it posts with over HTTP.
    pub name: String,
    /// MSH-3 (its first component, the namespace id), compared without regard to case.
    pub msh3: String,
    /// MSH-4 likewise; empty for any facility.
    pub msh4: String,
    /// The networks it connects from over MLLP.
    pub cidrs: Vec<IpNet>,
    /// With MLLP over mutual TLS: the subject its client certificate must carry, as RFC 4514
    /// writes it (`CN=epic-bridge,O=North Clinic`), compared without regard to case.
    pub tls_subject: Option<String>,
}

/// Where a message came from.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    /// An MLLP connection from this address, with the subject of the client certificate it
    /// presented over TLS.
    Mllp(IpAddr, Option<&'a str>),
    /// `POST /hl7v2` with the API token of this name.
    Http(&'a str),
}

/// The known senders, or anyone (a lab set-up: `[hl7] allow_any_sender`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Senders {
    list: Vec<Sender>,
    anyone: bool,
}

impl Senders {
    /// Only these.
    pub fn only(list: Vec<Sender>) -> Self {
        Self { list, anyone: false }
    }

    /// Anyone who can connect.
    pub fn anyone() -> Self {
        Self { list: Vec::new(), anyone: true }
    }

    pub fn allows_anyone(&self) -> bool {
        self.anyone
    }

    /// The known sender of a message with MSH-3 `app` and MSH-4 `facility` from `origin`:
    /// `Some("*")` when anyone may send.
    pub fn identify(&self, app: &str, facility: &str, origin: Origin<'_>) -> Option<&str> {
        if self.anyone {
            return Some("*");
        }
        self.list
            .iter()
            .find(|s| {
                s.msh3.eq_ignore_ascii_case(app)
                    && (s.msh4.is_empty() || s.msh4.eq_ignore_ascii_case(facility))
                    && match origin {
                        Origin::Mllp(ip, subject) => {
                            s.cidrs.iter().any(|net| net.contains(&canonical(ip)))
                                && s.tls_subject
                                    .as_deref()
                                    .is_none_or(|want| subject.is_some_and(|got| got.eq_ignore_ascii_case(want)))
                        }
                        Origin::Http(token) => s.name == token,
                    }
            })
            .map(|s| s.name.as_str())
    }
}

/// The subject of a DER certificate as RFC 4514 writes it (`CN=…,O=…`); `None` when it
/// does not parse.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der).ok().map(|c| c.tbs_certificate.subject.to_string())
}

/// An IPv4 address that arrived as IPv6 (`::ffff:a.b.c.d`) compared as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epic() -> Senders {
        Senders::only(vec![Sender {
            name: "epic".into(),
            msh3: "EPIC".into(),
            msh4: "NORTH".into(),
            cidrs: vec!["10.1.0.0/16".parse().unwrap(), "127.0.0.1/32".parse().unwrap()],
            tls_subject: None,
        }])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_sender_is_known_by_application_facility_and_network() {
        let s = epic();
        assert_eq!(s.identify("EPIC", "NORTH", Origin::Mllp(ip("10.1.2.3"), None)), Some("epic"));
        assert_eq!(s.identify("epic", "north", Origin::Mllp(ip("127.0.0.1"), None)), Some("epic"));
        assert_eq!(s.identify("EPIC", "NORTH", Origin::Mllp(ip("::ffff:10.1.2.3"), None)), Some("epic"));
        assert_eq!(s.identify("EPIC", "NORTH", Origin::Mllp(ip("10.2.0.1"), None)), None, "another network");
        assert_eq!(s.identify("EPIC", "SOUTH", Origin::Mllp(ip("10.1.2.3"), None)), None, "another facility");
        assert_eq!(s.identify("ANYHOST", "NORTH", Origin::Mllp(ip("10.1.2.3"), None)), None, "another application");
        assert_eq!(s.identify("EPIC", "NORTH", Origin::Http("epic")), Some("epic"));
        assert_eq!(s.identify("EPIC", "NORTH", Origin::Http("lab")), None, "another token");
    }

    #[test]
    fn a_sender_with_a_tls_subject_must_present_that_certificate() {
        let s = Senders::only(vec![Sender {
            tls_subject: Some("CN=test interface engine".into()),
            ..epic().list.remove(0)
        }]);
        let tls = |subject| Origin::Mllp(ip("10.1.2.3"), subject);
        assert_eq!(s.identify("EPIC", "NORTH", tls(Some("cn=Test Interface Engine"))), Some("epic"));
        assert_eq!(s.identify("EPIC", "NORTH", tls(Some("CN=stranger"))), None, "another certificate");
        assert_eq!(s.identify("EPIC", "NORTH", tls(None)), None, "no certificate");
        let subject = certificate_subject(&client_der()).unwrap();
        assert_eq!(subject, "CN=test interface engine");
        assert_eq!(certificate_subject(b"not a certificate"), None);
    }

    /// The test client certificate (`crates/testkit/data/tls/client.pem`) as DER.
    fn client_der() -> Vec<u8> {
        let pem = include_str!("../../testkit/data/tls/client.pem");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn with_no_entry_no_sender_is_known_unless_anyone_may_send() {
        assert_eq!(Senders::default().identify("EPIC", "NORTH", Origin::Mllp(ip("127.0.0.1"), None)), None);
        assert_eq!(Senders::anyone().identify("X", "", Origin::Http("t")), Some("*"));
    }

    #[test]
    fn an_empty_facility_matches_any() {
        let s = Senders::only(vec![Sender {
            name: "lab".into(),
            msh3: "LAB".into(),
            msh4: String::new(),
            cidrs: vec!["0.0.0.0/0".parse().unwrap()],
            tls_subject: None,
        }]);
        assert_eq!(s.identify("LAB", "ANY", Origin::Mllp(ip("192.0.2.1"), None)), Some("lab"));
    }
}
