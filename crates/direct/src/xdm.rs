//! IHE XDM packages as Direct carries them (ITI-32, "Distribute Document Set on Media"): a zip
//! with `IHE_XDM/<SUBSET>/METADATA.XML` (ebRIM) listing each document's `URI`, `size` and
//! SHA-1 `hash`, relative to the subset's folder. Names are matched case-insensitively (senders
//! write `METADATA.xml` too); a URI that leaves the package, a size or hash that does not match
//! what the metadata says, and packages or documents beyond the limits are refused with the
//! reason. Nothing is written to disk.

use std::io::Read;

use sha1::{Digest, Sha1};

/// At most this many entries in a package, …
pub const MAX_ENTRIES: usize = 200;
/// … this many bytes in one document (as a C-CDA may have) …
pub const MAX_DOCUMENT: u64 = refloop_cda::MAX_BYTES as u64;
/// … and in all (the 360X guide's limit for a message).
pub const MAX_TOTAL: u64 = 20 * 1024 * 1024;

/// A document of a package: its path in the zip, its media type (from the metadata) and bytes.
pub struct XdmDocument {
    pub path: String,
    pub mime_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// What METADATA.XML says of one document.
struct Entry {
    uri: String,
    mime_type: Option<String>,
    size: Option<u64>,
    hash: Option<String>,
}

/// The documents an XDM package lists, checked against its metadata.
pub fn unpack(package: &[u8]) -> Result<Vec<XdmDocument>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(package)).map_err(|_| "not a zip file".to_owned())?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} files in the package"));
    }
    let names: Vec<String> = zip.file_names().map(|n| n.replace('\\', "/")).collect();
    let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let metadata: Vec<usize> = (0..names.len())
        .filter(|&i| {
            let parts: Vec<&str> = lower[i].split('/').collect();
            parts.len() == 3 && parts[0] == "ihe_xdm" && parts[2] == "metadata.xml"
        })
        .collect();
    if metadata.is_empty() {
        return Err("no IHE_XDM/<subset>/METADATA.XML in the package".into());
    }
    let mut total = 0u64;
    let mut out = Vec::new();
    for m in metadata {
        let subset = names[m].rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
        let xml = read_entry(&mut zip, m, &mut total)?;
        for entry in entries(&xml).map_err(|e| format!("{}: {e}", names[m]))? {
            let path = resolve(&subset, &entry.uri).ok_or_else(|| format!("{}: leaves the package", entry.uri))?;
            let index = lower
                .iter()
                .position(|n| *n == path.to_ascii_lowercase())
                .ok_or_else(|| format!("{path}: listed in METADATA.XML but not in the package"))?;
            let bytes = read_entry(&mut zip, index, &mut total)?;
            if entry.size.is_some_and(|s| s != bytes.len() as u64) {
                return Err(format!("{path}: its size does not match METADATA.XML"));
            }
            if let Some(hash) = &entry.hash {
                let actual: String = Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                if !actual.eq_ignore_ascii_case(hash.trim()) {
                    return Err(format!("{path}: its SHA-1 does not match METADATA.XML"));
                }
            }
            out.push(XdmDocument { path, mime_type: entry.mime_type, bytes });
        }
    }
    Ok(out)
}

/// One file of the zip, within the limits (a declared size is not trusted: reading stops past it).
fn read_entry(zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, i: usize, total: &mut u64) -> Result<Vec<u8>, String> {
    let file = zip.by_index(i).map_err(|e| format!("the package cannot be read: {e}"))?;
    let name = file.name().to_owned();
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT + 1).read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(format!("{name}: larger than {MAX_DOCUMENT} bytes"));
    }
    *total += bytes.len() as u64;
    if *total > MAX_TOTAL {
        return Err(format!("the package holds more than {MAX_TOTAL} bytes"));
    }
    Ok(bytes)
}

/// The DocumentEntries (`rim:ExtrinsicObject`) of an ebRIM METADATA.XML.
fn entries(xml: &[u8]) -> Result<Vec<Entry>, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "not UTF-8 text".to_owned())?;
    let options = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: 200_000 };
    let doc =
        roxmltree::Document::parse_with_options(text, options).map_err(|e| format!("not well-formed XML: {e}"))?;
    let mut out = Vec::new();
    for object in doc.descendants().filter(|n| n.tag_name().name() == "ExtrinsicObject") {
        let slot = |name: &str| {
            object
                .children()
                .filter(|c| c.tag_name().name() == "Slot" && c.attribute("name") == Some(name))
                .flat_map(|s| s.descendants().filter(|v| v.tag_name().name() == "Value"))
                .filter_map(|v| v.text())
                .map(|t| t.trim().to_owned())
                .next()
        };
        let uri = slot("URI").ok_or_else(|| "a DocumentEntry without a URI".to_owned())?;
        out.push(Entry {
            uri,
            mime_type: object.attribute("mimeType").map(str::to_owned),
            size: slot("size").and_then(|s| s.parse().ok()),
            hash: slot("hash"),
        });
    }
    Ok(out)
}

/// `uri` relative to the subset folder `dir`, `..` resolved; `None` when it leaves the package.
fn resolve(dir: &str, uri: &str) -> Option<String> {
    if uri.contains(':') || uri.starts_with('/') {
        return None;
    }
    let uri = uri.replace('\\', "/");
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in uri.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A document to pack: its file name in the subset folder, media type and bytes.
pub struct Packed<'a> {
    pub name: &'a str,
    pub mime_type: &'a str,
    pub bytes: &'a [u8],
}

/// An IHE XDM package of `docs` in `IHE_XDM/SUBSET01/`, with the METADATA.XML (ebRIM 3.0) that
/// lists each one's URI, media type, size and SHA-1 and a submission set created at
/// `created` (`YYYYMMDDHHMMSS`, UTC), and the README.TXT and INDEX.HTM the profile asks for.
pub fn pack(docs: &[Packed<'_>], created: &str, author: &str) -> Vec<u8> {
    use std::io::Write;
    let esc = refloop_cda::escape;
    let mut objects = String::new();
    for (i, d) in docs.iter().enumerate() {
        let hash: String = Sha1::digest(d.bytes).iter().map(|b| format!("{b:02x}")).collect();
        objects.push_str(&format!(
            r#"<rim:ExtrinsicObject id="Document{n}" mimeType="{mime}" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
<rim:Slot name="URI"><rim:ValueList><rim:Value>{uri}</rim:Value></rim:ValueList></rim:Slot>
<rim:Slot name="size"><rim:ValueList><rim:Value>{size}</rim:Value></rim:ValueList></rim:Slot>
<rim:Slot name="hash"><rim:ValueList><rim:Value>{hash}</rim:Value></rim:ValueList></rim:Slot>
<rim:Slot name="creationTime"><rim:ValueList><rim:Value>{created}</rim:Value></rim:ValueList></rim:Slot>
<rim:Slot name="languageCode"><rim:ValueList><rim:Value>en-US</rim:Value></rim:ValueList></rim:Slot>
</rim:ExtrinsicObject>
"#,
            n = i + 1,
            mime = esc(d.mime_type),
            uri = esc(d.name),
            size = d.bytes.len(),
        ));
    }
    let metadata = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
<rim:RegistryObjectList>
{objects}<rim:RegistryPackage id="SubmissionSet01" objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage">
<rim:Slot name="submissionTime"><rim:ValueList><rim:Value>{created}</rim:Value></rim:ValueList></rim:Slot>
<rim:Name><rim:LocalizedString value="{author}"/></rim:Name>
</rim:RegistryPackage>
</rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
"#,
        author = esc(author),
    );
    let links: String =
        docs.iter().map(|d| format!("<li><a href=\"IHE_XDM/SUBSET01/{0}\">{0}</a></li>", esc(d.name))).collect();
    let index = format!("<html><head><title>XDM package</title></head><body><ul>{links}</ul></body></html>");
    let readme = format!("IHE XDM package from {author}, created {created}.\r\n");
    let mut files: Vec<(String, &[u8])> = vec![
        ("README.TXT".into(), readme.as_bytes()),
        ("INDEX.HTM".into(), index.as_bytes()),
        ("IHE_XDM/SUBSET01/METADATA.XML".into(), metadata.as_bytes()),
    ];
    files.extend(docs.iter().map(|d| (format!("IHE_XDM/SUBSET01/{}", d.name), d.bytes)));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        zip.start_file(path, options).expect("a zip entry in memory");
        zip.write_all(bytes).expect("zip bytes in memory");
    }
    zip.finish().expect("a zip in memory").into_inner()
}
