//! Ids minted by refloop: a readable prefix and 20 random base-32 characters.

/// A new random id such as `ref_7k2m…` (100 bits of randomness).
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    id.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char));
    id
}
