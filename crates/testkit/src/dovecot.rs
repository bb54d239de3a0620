//! A real IMAP server for the tests: Debian's Dovecot (`dovecot-imapd`, installed by
//! `scripts/test`), started privately — its own configuration, state and maildir in a
//! temporary folder, one user, IMAP (with STARTTLS) and IMAP over TLS (the test certificate
//! for 127.0.0.1, `data/tls/`) on loopback ports — and stopped when dropped. Variants: no TLS
//! at all (a local gateway in the clear), or a client certificate required to log in.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{io::AsyncReadExt, net::TcpStream};

pub struct Dovecot {
    pub port: u16,
    /// IMAP over TLS (the certificate of `tls::file("server.pem")`, signed by `ca.pem`).
    pub tls_port: u16,
    pub user: String,
    pub password: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

/// How a [`Dovecot`] is set up.
#[derive(Clone, Copy, Debug)]
pub struct DovecotOptions {
    /// TLS offered (implicit on `tls_port`, STARTTLS on `port`); else plain IMAP only.
    pub tls: bool,
    /// Logging in needs a client certificate signed by the test CA (`client.pem`).
    pub client_cert: bool,
}

impl Dovecot {
    /// Starts one (TLS offered, no client certificate) and waits until it greets.
    pub async fn start() -> Dovecot {
        Self::start_with(DovecotOptions { tls: true, client_cert: false }).await
    }

    /// Starts one set up as `o` and waits until it greets.
    pub async fn start_with(o: DovecotOptions) -> Dovecot {
        let binary = std::env::var("TEST_DOVECOT").unwrap_or_else(|_| "/usr/sbin/dovecot".to_owned());
        assert!(
            std::path::Path::new(&binary).exists(),
            "{binary}: Dovecot must be installed (scripts/test installs dovecot-imapd)"
        );
        let dir = tempfile::tempdir().expect("a temporary folder");
        let d = dir.path().to_path_buf();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).expect("a folder");
        }
        let (user, password) = ("direct".to_owned(), "mailbox-secret-1".to_owned());
        std::fs::write(d.join("passwd"), format!("{user}:{{PLAIN}}{password}::::::\n")).expect("a passwd file");
        // Dovecot's auth process runs as its own user: it must be able to read the user list.
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(d.clone(), 0o755), (d.join("passwd"), 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("permissions");
        }
        let free =
            || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let (port, tls_port) = (free(), free());
        let (cert, key) = (crate::tls::file("server.pem"), crate::tls::file("server.key"));
        // The mail processes run as this user: ours, or (Dovecot refuses root) Dovecot's own.
        let (uid, gid) = match ids(None) {
            (0, _) => ids(Some("dovecot")),
            mine => mine,
        };
        std::os::unix::fs::chown(d.join("home"), Some(uid), Some(gid)).expect("the mail folder for the mail user");
        let p = |s: &str| d.join(s).display().to_string();
        let mut tls = if o.tls {
            format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}\n", cert.display(), key.display())
        } else {
            "ssl = no\n".to_owned()
        };
        if o.client_cert {
            let ca = crate::tls::file("ca.pem");
            tls.push_str(&format!(
                "ssl_ca = <{}\nssl_verify_client_cert = yes\nssl_require_crl = no\nauth_ssl_require_client_cert = yes\n",
                ca.display()
            ));
        }
        let imaps = if o.tls { format!("port = {tls_port}\n    ssl = yes") } else { "port = 0".to_owned() };
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {run}\nstate_dir = {state}\nlog_path = {log}\n\
             {tls}disable_plaintext_auth = no\nauth_mechanisms = plain login\nfirst_valid_uid = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={home}/%u\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    address = 127.0.0.1\n    {imaps}\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = 0\n  }}\n}}\n",
            run = p("run"),
            state = p("state"),
            log = p("dovecot.log"),
            passwd = p("passwd"),
            home = p("home"),
        );
        let conf_path: PathBuf = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).expect("a configuration");
        let child = std::process::Command::new(&binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts");
        let dovecot = Dovecot { port, tls_port, user, password, child, _dir: dir };
        // Ready once it greets (it may take a moment to bind on a busy machine).
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() && &buf == b"* OK" {
                    return dovecot;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dovecot did not greet on 127.0.0.1:{port}");
    }

    /// The mailbox's folder as a URL for `[direct] imap_url`: plain IMAP …
    pub fn url(&self) -> String {
        format!("imap://127.0.0.1:{}/INBOX", self.port)
    }

    /// … or over TLS (trust `tls::file("ca.pem")`).
    pub fn tls_url(&self) -> String {
        format!("imaps://127.0.0.1:{}/INBOX", self.tls_port)
    }

    /// How refloop reads this mailbox: over TLS, trusting the test CA.
    pub fn mailbox(&self) -> refloop_direct::MailboxConfig {
        refloop_direct::MailboxConfig {
            url: self.tls_url(),
            user: self.user.clone(),
            password: self.password.clone(),
            ca_file: Some(crate::tls::file("ca.pem")),
            client_cert: None,
        }
    }

    async fn session(&self) -> async_imap::Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect to dovecot");
        let mut client = async_imap::Client::new(tcp);
        let _greeting = client.read_response().await;
        let mut s = client.login(&self.user, &self.password).await.map_err(|(e, _)| e).expect("log in");
        s.select("INBOX").await.expect("select INBOX");
        s
    }

    /// Delivers a message to the mailbox (as the HISP does), unseen.
    pub async fn deliver(&self, raw: &[u8]) {
        let mut s = self.session().await;
        s.append("INBOX", None, None, raw).await.expect("append");
        s.logout().await.expect("log out");
    }

    /// How many messages are unseen.
    pub async fn unseen(&self) -> usize {
        let mut s = self.session().await;
        let n = s.uid_search("UNSEEN").await.expect("search").len();
        s.logout().await.expect("log out");
        n
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid and gid of `user` (or of this process).
fn ids(user: Option<&str>) -> (u32, u32) {
    let out = |flag: &str| {
        std::process::Command::new("id")
            .arg(flag)
            .args(user)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (out("-u"), out("-g"))
}
