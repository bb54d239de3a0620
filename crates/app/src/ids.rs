//! Ids minted by refloop: a readable prefix, 10 base-32 characters of the minting time and
//! 10 random ones.

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new id such as `ref_01hx3…` that sorts by minting time (like a ULID), so rows inserted
/// together land on the same index pages; 50 bits of randomness keep ids of one millisecond
/// apart. The time only orders storage: no logic reads it (that is what [`crate::Clock`] is for).
pub fn new_id(prefix: &str) -> String {
    #[allow(clippy::disallowed_methods)]
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    id.extend((0..10).rev().map(|i| ALPHABET[((millis >> (5 * i)) & 31) as usize] as char));
    id.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_shape_and_differ() {
        let (a, b) = (new_id("ref"), new_id("ref"));
        assert_ne!(a, b);
        assert!(a.starts_with("ref_") && a.len() == 24, "{a}");
        assert!(a[4..].bytes().all(|c| ALPHABET.contains(&c)), "{a}");
    }
}
