//! HL7 v2 in its pipe-and-hat (ER7) encoding: parsing that survives real feeds, ACK
//! building, and MLLP framing.
//!
//! [`parse`] reads the delimiters from MSH-1/MSH-2 (four or five encoding characters),
//! accepts CR, LF and CRLF segment endings, a leading byte-order mark, trailing spaces and
//! lines wrapped mid-segment, decodes escape sequences and honours MSH-18 (UTF-8 or
//! ISO 8859-1). Any input yields a [`Message`] or a [`ParseError`], never a panic.

mod ack;
mod batch;
mod escape;
mod fields;
mod ingest;
mod listener;
mod map;
mod message;
mod mllp;
mod senders;
mod time;
mod tls;

pub use ack::{AckCode, AckError, ErrorCode, build_ack};
pub use batch::split_batch;
pub use escape::{escape, unescape};
pub use fields::{describe, field_name};
pub use ingest::{Hl7Protocol, Ingest, Reply};
pub use listener::{ListenerConfig, serve_mllp};
pub use map::{MapConfig, MapError, check_header, map};
pub use message::{Delimiters, Message, ParseError, Segment, parse};
pub use mllp::{MllpCodec, MllpError};
pub use refloop_app::{Mapped, Target};
pub use senders::{IpNet, Origin, Sender, Senders};
pub use time::parse_ts;
pub use tls::{TlsAcceptor, TlsError, acceptor as tls_acceptor};
