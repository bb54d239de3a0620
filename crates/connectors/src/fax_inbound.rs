//! The fax provider's inbound callback: a JSON body naming the fax and carrying its PDF
//! (inline as base64, or at a URL to fetch), signed with the shared secret: the header
//! `X-Fax-Signature` is `sha256=` and the hex HMAC-SHA256 of the body.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use refloop_app::documents::MAX_DOCUMENT_BYTES;

/// The header the signature comes in.
pub const FAX_SIGNATURE_HEADER: &str = "x-fax-signature";

/// The signature of `body` with `secret`, as the header carries it.
pub fn fax_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks a signature in constant time; an empty secret accepts nothing.
pub fn fax_signature_ok(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.trim().strip_prefix("sha256=").filter(|h| h.len() == 64 && h.is_ascii()) else {
        return false;
    };
    let given: Option<Vec<u8>> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let (Some(given), false) = (given, secret.is_empty()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The callback's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundFax {
    /// The provider's id of the fax: a resend carries the same one.
    pub id: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub received_at: Option<String>,
    #[serde(default)]
    pub pages: Option<u32>,
    /// The PDF, base64.
    #[serde(default)]
    pub file: Option<String>,
    /// Where to fetch the PDF.
    #[serde(default)]
    pub media_url: Option<String>,
}

/// Why an inbound fax was not taken: refused for good (the provider should not resend) or
/// for now (it should).
#[derive(Debug, PartialEq, Eq)]
pub enum FaxRefusal {
    Invalid(String),
    Later(String),
}

impl InboundFax {
    /// Reads and checks the body.
    pub fn parse(body: &[u8]) -> Result<Self, FaxRefusal> {
        let fax: InboundFax =
            serde_json::from_slice(body).map_err(|e| FaxRefusal::Invalid(format!("not an inbound fax: {e}")))?;
        if fax.id.trim().is_empty() || fax.id.len() > 128 {
            return Err(FaxRefusal::Invalid("id: 1 to 128 characters".into()));
        }
        if fax.file.is_some() == fax.media_url.is_some() {
            return Err(FaxRefusal::Invalid("give the PDF either inline (file) or at media_url".into()));
        }
        Ok(fax)
    }

    /// The PDF: decoded, or fetched from `media_url` (at most [`MAX_DOCUMENT_BYTES`]).
    pub async fn pdf(&self, http: &reqwest::Client) -> Result<Vec<u8>, FaxRefusal> {
        let bytes = match (&self.file, &self.media_url) {
            (Some(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| FaxRefusal::Invalid("file: not base64".into()))?,
            (None, Some(url)) => fetch(http, url).await?,
            (None, None) => return Err(FaxRefusal::Invalid("no PDF".into())),
        };
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(FaxRefusal::Invalid(format!("the PDF is larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
        if !bytes.starts_with(b"%PDF-") {
            return Err(FaxRefusal::Invalid("the fax is not a PDF".into()));
        }
        Ok(bytes)
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FaxRefusal> {
    let parsed = reqwest::Url::parse(url).map_err(|_| FaxRefusal::Invalid("media_url: not a URL".into()))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(FaxRefusal::Invalid("media_url: http or https only".into()));
    }
    let later = |why: &str| FaxRefusal::Later(format!("the fax's PDF could not be fetched: {why}"));
    let mut r = http.get(parsed).timeout(Duration::from_secs(60)).send().await.map_err(|_| later("no answer"))?;
    if !r.status().is_success() {
        return Err(later(&format!("the provider answered {}", r.status().as_u16())));
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|_| later("the download broke off"))? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_DOCUMENT_BYTES {
            return Err(FaxRefusal::Invalid(format!("the PDF is larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_only_with_the_same_secret_and_body() {
        let sig = fax_signature("s3cret", b"{\"id\":\"1\"}");
        assert!(sig.starts_with("sha256=") && sig.len() == 71);
        assert!(fax_signature_ok("s3cret", b"{\"id\":\"1\"}", &sig));
        assert!(!fax_signature_ok("s3cret", b"{\"id\":\"2\"}", &sig));
        assert!(!fax_signature_ok("other", b"{\"id\":\"1\"}", &sig));
        assert!(!fax_signature_ok("", b"", &fax_signature("", b"")), "an empty secret accepts nothing");
        assert!(!fax_signature_ok("s3cret", b"{\"id\":\"1\"}", "sha256=zz"));
        assert!(!fax_signature_ok("s3cret", b"{\"id\":\"1\"}", &sig[7..]));
    }

    #[test]
    fn a_body_gives_the_pdf_one_way() {
        assert!(matches!(InboundFax::parse(b"{\"id\":\"f1\"}"), Err(FaxRefusal::Invalid(_))));
        assert!(matches!(
            InboundFax::parse(b"{\"id\":\"f1\",\"file\":\"JVBERi0=\",\"media_url\":\"http://x/\"}"),
            Err(FaxRefusal::Invalid(_))
        ));
        assert!(matches!(InboundFax::parse(b"{\"id\":\"\",\"file\":\"JVBERi0=\"}"), Err(FaxRefusal::Invalid(_))));
        assert!(matches!(
            InboundFax::parse(b"{\"id\":\"f1\",\"file\":\"x\",\"ssn\":\"1\"}"),
            Err(FaxRefusal::Invalid(_))
        ));
        assert!(InboundFax::parse(b"{\"id\":\"f1\",\"file\":\"JVBERi0=\"}").is_ok());
    }
}
