//! MLLP framing: `0x0B` message `0x1C 0x0D`.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

const START: u8 = 0x0B;
const END: [u8; 2] = [0x1C, 0x0D];

#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("an MLLP frame exceeds {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into MLLP frames (without the framing bytes) and frames outgoing
/// messages. Bytes outside a frame are skipped; a frame larger than `max` is an error.
#[derive(Clone, Copy, Debug)]
pub struct MllpCodec {
    max: usize,
}

impl MllpCodec {
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl Decoder for MllpCodec {
    type Item = BytesMut;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, MllpError> {
        match buf.iter().position(|b| *b == START) {
            Some(0) => {}
            Some(n) => buf.advance(n),
            None => {
                buf.clear();
                return Ok(None);
            }
        }
        match buf.windows(2).position(|w| w == END) {
            Some(end) => {
                let mut frame = buf.split_to(end + 2);
                frame.advance(1);
                frame.truncate(end - 1);
                Ok(Some(frame))
            }
            None if buf.len() > self.max + 3 => Err(MllpError::TooLarge(self.max)),
            None => Ok(None),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, msg: T, buf: &mut BytesMut) -> Result<(), MllpError> {
        let msg = msg.as_ref();
        buf.reserve(msg.len() + 3);
        buf.put_u8(START);
        buf.put_slice(msg);
        buf.put_slice(&END);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_noise_between_frames_is_skipped() {
        let mut codec = MllpCodec::new(1024);
        let mut buf = BytesMut::new();
        codec.encode(b"MSH|one".as_slice(), &mut buf).unwrap();
        buf.put_slice(b"\r\n");
        codec.encode(b"MSH|two".as_slice(), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().as_ref(), b"MSH|one");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().as_ref(), b"MSH|two");
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_its_end() {
        let mut codec = MllpCodec::new(1024);
        let mut buf = BytesMut::from(&b"\x0bMSH|par"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.put_slice(b"t\x1c\x0d");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().as_ref(), b"MSH|part");
    }

    #[test]
    fn an_oversized_frame_is_an_error() {
        let mut codec = MllpCodec::new(8);
        let mut buf = BytesMut::from(&b"\x0bMSH|0123456789"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(MllpError::TooLarge(8))));
    }
}
