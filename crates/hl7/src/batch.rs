//! Batch files: several messages in one file, optionally wrapped in FHS/BHS … BTS/FTS.

/// Splits a batch file into its messages: each starts at an `MSH` line. File and batch
/// header and trailer segments (FHS, BHS, BTS, FTS), blank lines and comment lines (`#`)
/// are dropped. Line endings inside each message are kept as they were.
pub fn split_batch(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\r' || *b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let head = line.get(..3).unwrap_or(line);
        if matches!(head, b"FHS" | b"BHS" | b"BTS" | b"FTS") || line.first() == Some(&b'#') {
            continue;
        }
        if head == b"MSH" {
            messages.push(Vec::new());
        }
        if let Some(current) = messages.last_mut() {
            current.extend_from_slice(line);
        }
    }
    messages.retain(|m| m.iter().any(|b| !b.is_ascii_whitespace()));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages_and_drops_batch_envelopes_and_comments() {
        let file = b"FHS|^~\\&|A\rBHS|^~\\&|A\r# a comment\nMSH|^~\\&|A|||||ADT^A04|1|P|2.5\rPID|1\rMSH|^~\\&|A|||||ADT^A03|2|P|2.5\rBTS|2\rFTS|1\r";
        let msgs = split_batch(file);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"MSH|^~\\&|A|||||ADT^A04|1|P|2.5\rPID|1\r");
        assert_eq!(msgs[1], b"MSH|^~\\&|A|||||ADT^A03|2|P|2.5\r");
    }
}
