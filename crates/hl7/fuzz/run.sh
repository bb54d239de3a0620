#!/usr/bin/env bash
# Fuzzes the HL7 parser, mapping and ACK builder for SECONDS (default 180), seeded with the
# conformance fixtures. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
mkdir -p fuzz/corpus/parse
seeds=(tests/fixtures/*/)
exec cargo +nightly fuzz run parse fuzz/corpus/parse "${seeds[@]}" -- -max_total_time="$seconds" -max_len=65536
