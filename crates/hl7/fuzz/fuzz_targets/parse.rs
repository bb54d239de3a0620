//! Any bytes: split, parse, read every field, map and acknowledge — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refloop_hl7::{AckCode, MapConfig, build_ack, check_header, map, parse, split_batch};

fuzz_target!(|data: &[u8]| {
    let cfg = MapConfig::with_defaults(jiff::tz::TimeZone::UTC);
    let now: jiff::Timestamp = "2026-03-02T15:00:00Z".parse().unwrap();
    for raw in split_batch(data) {
        match parse(&raw) {
            Ok(m) => {
                for s in &m.segments {
                    for f in 0..s.len() + 1 {
                        let _ = (s.get(f, 1), s.at(f, 1, 2, 1), s.is_null(f), s.repetitions(f));
                    }
                }
                let _ = check_header(&m).and_then(|()| map(&m, &cfg, now));
                let _ = build_ack(Ok(&m), AckCode::AE, None, "X", "Y");
            }
            Err(_) => {
                let _ = build_ack(Err(&raw), AckCode::AR, None, "X", "Y");
            }
        }
    }
});
