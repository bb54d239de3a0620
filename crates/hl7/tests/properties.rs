//! Any bytes give a message or an error, never a panic.

use proptest::prelude::*;
use refloop_hl7::{AckCode, MllpCodec, build_ack, parse, split_batch};
use tokio_util::codec::Decoder;

fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"MSH|^~\\&|".to_vec()),
        Just(b"MSH#*@!%#".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"|".to_vec()),
        Just(b"^".to_vec()),
        Just(b"~".to_vec()),
        Just(b"&".to_vec()),
        Just(b"\\X4".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"PID".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(vec![0x0B]),
        Just(vec![0x1C, 0x0D]),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop_oneof![hl7ish(), proptest::collection::vec(any::<u8>(), 0..512)]) {
        for msg in split_batch(&bytes) {
            let _ = match parse(&msg) {
                Ok(m) => {
                    for s in &m.segments {
                        for f in 0..s.len() + 2 {
                            let _ = (s.get(f, 1), s.at(f, 1, 2, 2), s.is_null(f), s.repetitions(f));
                        }
                    }
                    build_ack(Ok(&m), AckCode::AE, None, "x", "y")
                }
                Err(_) => build_ack(Err(&msg), AckCode::AR, None, "x", "y"),
            };
        }
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut codec = MllpCodec::new(256);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }
}
