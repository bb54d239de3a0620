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

/// An IHE XDM package (zip) holding `docs` (name, bytes) in `IHE_XDM/SUBSET01/`, with the
/// METADATA.XML that lists each one's URI, size and SHA-1.
pub fn xdm_package(docs: &[(&str, &[u8])]) -> Vec<u8> {
    use sha1::Digest;
    let mut objects = String::new();
    for (i, (name, bytes)) in docs.iter().enumerate() {
        let hash: String = sha1::Sha1::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        objects.push_str(&format!(
            r#"<rim:ExtrinsicObject id="Document{i}" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
  <rim:Slot name="URI"><rim:ValueList><rim:Value>{name}</rim:Value></rim:ValueList></rim:Slot>
  <rim:Slot name="size"><rim:ValueList><rim:Value>{}</rim:Value></rim:ValueList></rim:Slot>
  <rim:Slot name="hash"><rim:ValueList><rim:Value>{hash}</rim:Value></rim:ValueList></rim:Slot>
</rim:ExtrinsicObject>"#,
            bytes.len()
        ));
    }
    let metadata = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
<rim:RegistryObjectList>{objects}</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"#
    );
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("README.TXT".into(), b"refloop test package".to_vec()),
        ("IHE_XDM/SUBSET01/METADATA.XML".into(), metadata.into_bytes()),
    ];
    files.extend(docs.iter().map(|(n, b)| (format!("IHE_XDM/SUBSET01/{n}"), b.to_vec())));
    zip_of(&files)
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
