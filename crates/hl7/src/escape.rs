//! Escape sequences: `\F\ \S\ \T\ \R\ \E\`, formatting (`\.br\` …), `\Xhh…\` hex.

use crate::message::Delimiters;

/// Decodes the escape sequences of one leaf value. Unknown sequences are kept as written.
pub fn unescape(raw: &str, d: &Delimiters) -> String {
    let Some(esc) = d.escape else { return raw.to_owned() };
    if !raw.contains(esc) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let seq = &after[..end];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(esc),
            "P" => out.extend(d.truncation),
            ".br" | ".sp" => out.push('\n'),
            "H" | "N" => {}
            s if s.starts_with(".fi") || s.starts_with(".nf") || s.starts_with(".in") || s.starts_with(".ti") => {}
            s if s.starts_with(".sk") || s.starts_with(".ce") => out.push(' '),
            s if s.starts_with('X') && s.len() > 1 && (s.len() - 1) % 2 == 0 => match hex(&s[1..]) {
                Some(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => out.push_str(&text),
                    Err(e) => out.extend(e.into_bytes().into_iter().map(char::from)),
                },
                None => keep(&mut out, esc, seq),
            },
            _ => keep(&mut out, esc, seq),
        }
        rest = &after[end + esc.len_utf8()..];
    }
    out.push_str(rest);
    out
}

fn keep(out: &mut String, esc: char, seq: &str) {
    out.push(esc);
    out.push_str(seq);
    out.push(esc);
}

fn hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// Escapes delimiters in a value to be written into a field.
pub fn escape(value: &str, d: &Delimiters) -> String {
    let esc = d.escape.unwrap_or('\\');
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let code = match c {
            c if c == esc => "E",
            c if c == d.field => "F",
            c if c == d.component => "S",
            c if c == d.subcomponent => "T",
            c if c == d.repetition => "R",
            '\r' | '\n' => ".br",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_delimiters_formatting_and_hex() {
        let d = Delimiters::default();
        assert_eq!(unescape(r"A\F\B\S\C\T\D\R\E\E\F", &d), r"A|B^C&D~E\F");
        assert_eq!(unescape(r"line one\.br\line two", &d), "line one\nline two");
        assert_eq!(unescape(r"\X4869\ there", &d), "Hi there");
        assert_eq!(unescape(r"\XC2B5\mol/L", &d), "µmol/L");
        assert_eq!(unescape(r"\H\bold\N\", &d), "bold");
        assert_eq!(unescape(r"keep \Zcustom\ and \unterminated", &d), r"keep \Zcustom\ and \unterminated");
    }

    #[test]
    fn escape_round_trips() {
        let d = Delimiters::default();
        let value = "a|b^c&d~e\\f";
        assert_eq!(unescape(&escape(value, &d), &d), value);
    }
}
