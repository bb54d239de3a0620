//! The test-only certificates in `data/tls/` (made by `data/tls/make.sh`): a CA, a server
//! certificate for 127.0.0.1 / localhost, a client certificate from that CA and one from a
//! CA the server does not trust.

use std::{path::PathBuf, sync::Arc};

use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

/// The path of a file in `data/tls/`: `ca.pem`, `server.pem`, `server.key`, `client.pem`, …
pub fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tls").join(name)
}

/// A TLS client that trusts the test CA and presents `identity`'s certificate when given.
pub fn connector(identity: Option<&str>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file("ca.pem")).expect("the test CA") {
        roots.add(cert.expect("a PEM certificate")).expect("a usable CA certificate");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(file(&format!("{name}.pem")))
                .expect("a client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM certificates");
            let key = PrivateKeyDer::from_pem_file(file(&format!("{name}.key"))).expect("a client key");
            builder.with_client_auth_cert(chain, key).expect("a client identity")
        }
    };
    TlsConnector::from(Arc::new(config))
}
