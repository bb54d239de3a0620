//! A real OpenID Connect provider on loopback: `scripts/oidc_provider.mjs`, which runs the
//! npm package `oidc-provider` (installed in `target/oidc` by `scripts/test`), with one
//! confidential client. Its development login page takes any username; the accounts `ana`
//! (group `refloop-admins`), `cole` (`care-team`, `staff`), `nia` (`staff`) and `casey`
//! (`care-team`) carry groups.
//! Stopped when dropped.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
    child: Child,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl OidcProvider {
    /// Starts the provider with a client that may send browsers back to `redirect_uri` only.
    pub fn start(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        let modules = std::env::var("TEST_OIDC_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("target/oidc/package.json"));
        assert!(
            modules.with_file_name("node_modules").join("oidc-provider").exists(),
            "the OpenID provider is missing next to {}: run ./scripts/test, which installs it",
            modules.display()
        );
        let mut child = Command::new("node")
            .arg(root().join("scripts/oidc_provider.mjs"))
            .args([client_id, client_secret, redirect_uri])
            .env("TEST_OIDC_MODULES", &modules)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (scripts/test installs it)");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the provider starts");
        // Keep reading what it prints, so that it never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let issuer =
            line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("the provider said {line:?}")).to_owned();
        OidcProvider { issuer, child }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
