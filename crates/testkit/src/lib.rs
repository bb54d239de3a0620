//! Test helpers: a fresh database per test (a SQLite file, or a PostgreSQL schema of its
//! own), a [`TestApp`] — the real HTTP server on a loopback port with a manual clock — and
//! fakes of outside services' real APIs ([`FakeEhr`], [`FakeTwilio`]).
//!
//! PostgreSQL tests never skip: if the server at `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) is unreachable they fail and say so.

mod db;
mod direct_mail;
mod dovecot;
mod fake_chat;
mod fake_ehr;
mod fake_fax;
mod fake_slots;
mod fake_smtp;
mod fake_twilio;
mod oidc_provider;
pub mod peers;
mod proxy;
mod server;
pub mod tls;

pub use db::{Backend, TestDb, sqlite_integrity};
pub use direct_mail::{cda_example, direct_letter, xdm_package, zip_of};
pub use dovecot::{Dovecot, DovecotOptions};
pub use fake_chat::FakeChat;
pub use fake_ehr::{CLIENT_ID, FakeEhr, SMART_PRIVATE_KEY};
pub use fake_fax::{FAX_KEY, FAX_SECRET, FakeFax, SentFax, fax_pdf, post_signed};
pub use fake_slots::{FakeSlots, slot};

/// The inbound-fax webhook's secret in a [`TestApp`].
pub const FAX_WEBHOOK_SECRET: &str = "test-fax-webhook-secret";
pub use fake_smtp::{FakeSmtp, Mail};
pub use fake_twilio::{FakeTwilio, SentSms};
pub use oidc_provider::OidcProvider;
pub use proxy::{TcpProxy, url_addr};
pub use server::{MllpClient, Reply, TestApp, TestAppBuilder, ack_code, ts};
