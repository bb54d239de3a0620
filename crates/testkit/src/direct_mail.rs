//! Direct messages as a specialist's HISP delivers them, for the tests: headers, a text part
//! and a C-CDA attachment in base64; and the C-CDA examples (see `crates/cda/tests/fixtures`).

use base64::Engine;

/// One of HL7's C-CDA R2.1 examples (`Consultation_Note.xml`, `Progress_Note.xml`, …).
pub fn cda_example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../cda/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("a C-CDA example")
}

/// A Direct message with `message_id` and `subject`, answering `in_reply_to` when given, with
/// `attachment` (file name, bytes) in base64 (`application/zip` for a `.zip`, `application/pdf`
/// for a `.pdf`, else XML).
pub fn direct_letter(
    message_id: &str,
    subject: &str,
    in_reply_to: Option<&str>,
    attachment: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut m = String::from(
        "From: Dr Heart <heart@direct.specialists.example>\r\nTo: referrals@direct.north-clinic.example\r\n",
    );
    m.push_str(&format!("Subject: {subject}\r\nMessage-ID: {message_id}\r\n"));
    if let Some(r) = in_reply_to {
        m.push_str(&format!("In-Reply-To: {r}\r\nReferences: {r}\r\n"));
    }
    m.push_str("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
    m.push_str("--b1\r\nContent-Type: text/plain\r\n\r\nThe consult note is attached.\r\n");
    if let Some((name, bytes)) = attachment {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let ctype = match name.rsplit('.').next() {
            Some("zip") => "application/zip",
            Some("pdf") => "application/pdf",
            _ => "application/xml",
        };
        m.push_str(&format!(
            "--b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; \
             filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        for line in b64.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            m.push_str("\r\n");
        }
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

/// An IHE XDM package (zip) holding `docs` (name, bytes; XML) in `IHE_XDM/SUBSET01/`, with the
/// METADATA.XML that lists each one's URI, size and SHA-1.
pub fn xdm_package(docs: &[(&str, &[u8])]) -> Vec<u8> {
    let packed: Vec<refloop_direct::xdm::Packed<'_>> =
        docs.iter().map(|(name, bytes)| refloop_direct::xdm::Packed { name, mime_type: "text/xml", bytes }).collect();
    refloop_direct::xdm::pack(&packed, "20260302150000", "a specialist's office")
}

/// A zip of `files` (path, bytes), deflated.
pub fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        zip.start_file(path.as_str(), options).expect("a zip entry");
        zip.write_all(bytes).expect("zip bytes");
    }
    zip.finish().expect("a zip").into_inner()
}
