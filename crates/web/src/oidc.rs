//! Single sign-on with the practice's OpenID provider (`[auth.oidc]`): its metadata, the
//! redirect out (authorization code with PKCE S256, `state` and `nonce`), and on the way
//! back the code exchange and the ID token's checks — signature against the provider's
//! published keys, issuer, audience, expiry (jsonwebtoken), then the nonce — before the
//! username and role are read from its claims.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use refloop_app::{Role, SsoPending, SsoStart};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

/// How long the provider's metadata and keys are kept before being read again.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// The provider and how its claims map to us.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The issuer URL (its metadata is at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Our callback as registered with the provider: `https://…/login/sso/callback`.
    pub redirect_url: String,
    /// The claim holding the username (`preferred_username`, `email`, …).
    pub username_claim: String,
    /// The claim holding the groups or roles that map to ours (a string or a list).
    pub role_claim: String,
    /// Claim value → role; with several matches the broadest role wins.
    pub roles: Vec<(String, Role)>,
    /// The sign-in button's text.
    pub label: String,
}

/// Why a single sign-on failed, in words safe to show (never a token or a claim's value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(pub String);

fn fail(what: impl Into<String>) -> OidcError {
    OidcError(what.into())
}

#[derive(Clone, Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The OpenID client: settings plus the provider's metadata and keys, cached.
#[derive(Clone)]
pub struct Oidc {
    settings: Arc<OidcSettings>,
    http: reqwest::Client,
    metadata: Arc<Mutex<Option<(Instant, Metadata)>>>,
    keys: Arc<Mutex<Option<(Instant, JwkSet)>>>,
}

/// What signing in with the provider yields: who, and as what (`None`: none of their claim
/// values maps to a role here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoIdentity {
    pub username: String,
    pub role: Option<Role>,
}

/// The broader of two roles.
fn broadest(a: Role, b: Role) -> Role {
    let rank = |r: Role| match r {
        Role::Admin => 3,
        Role::Coordinator => 2,
        Role::Viewer => 1,
        Role::Integration => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Oidc { settings: Arc::new(settings), http, metadata: Arc::default(), keys: Arc::default() }
    }

    pub fn label(&self) -> &str {
        &self.settings.label
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, OidcError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|_| fail(format!("the identity provider's {what} could not be read")))?;
        if !resp.status().is_success() {
            return Err(fail(format!("the identity provider answered {} for its {what}", resp.status().as_u16())));
        }
        resp.json()
            .await
            .map_err(|_| fail(format!("the identity provider's {what} is not what OpenID Connect describes")))
    }

    async fn metadata(&self) -> Result<Metadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, m)) = cached.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(m.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
        let m: Metadata = self.get_json(&url, "metadata").await?;
        if m.issuer.trim_end_matches('/') != self.settings.issuer.trim_end_matches('/') {
            return Err(fail("the identity provider's metadata names another issuer"));
        }
        *cached = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    /// The provider's key for `kid` (read again once when it is not known: keys rotate).
    async fn key(&self, jwks_uri: &str, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        let mut cached = self.keys.lock().await;
        for fresh in [false, true] {
            if fresh || cached.as_ref().is_none_or(|(at, _)| at.elapsed() >= CACHE_FOR) {
                let set: JwkSet = self.get_json(jwks_uri, "signing keys").await?;
                *cached = Some((Instant::now(), set));
            }
            let set = &cached.as_ref().expect("just read").1;
            let found = match kid {
                Some(kid) => set.find(kid),
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            if let Some(jwk) = found {
                return DecodingKey::from_jwk(jwk)
                    .map_err(|_| fail("the identity provider's signing key cannot be used"));
            }
        }
        Err(fail("the ID token is signed with a key the identity provider does not publish"))
    }

    /// Where to send the browser to sign in.
    pub async fn authorize_url(&self, start: &SsoStart) -> Result<String, OidcError> {
        let m = self.metadata().await?;
        let s = &self.settings;
        let url = reqwest::Url::parse_with_params(
            &m.authorization_endpoint,
            &[
                ("response_type", "code"),
                ("client_id", s.client_id.as_str()),
                ("redirect_uri", s.redirect_url.as_str()),
                ("scope", "openid profile email"),
                ("state", start.state.as_str()),
                ("nonce", start.nonce.as_str()),
                ("code_challenge", start.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|_| fail("the identity provider's authorization endpoint is not a URL"))?;
        Ok(url.into())
    }

    /// Exchanges `code` for the ID token, checks it, and reads who signed in and as what.
    pub async fn finish(&self, code: &str, pending: &SsoPending) -> Result<SsoIdentity, OidcError> {
        let m = self.metadata().await?;
        let s = &self.settings;
        let resp = self
            .http
            .post(&m.token_endpoint)
            .basic_auth(&s.client_id, Some(&s.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", s.redirect_url.as_str()),
                ("code_verifier", pending.verifier.as_str()),
            ])
            .send()
            .await
            .map_err(|_| fail("the identity provider could not be reached to finish signing in"))?;
        if !resp.status().is_success() {
            return Err(fail(format!("the identity provider refused the sign-in ({})", resp.status().as_u16())));
        }
        let body: Value = resp.json().await.map_err(|_| fail("the identity provider's token answer is not JSON"))?;
        let id_token = body["id_token"].as_str().ok_or_else(|| fail("the identity provider sent no ID token"))?;
        let claims = self.check(id_token, &m, &pending.nonce).await?;
        self.settings.identity(&claims)
    }

    /// The ID token's claims once its signature, issuer, audience, expiry and nonce hold.
    async fn check(&self, id_token: &str, m: &Metadata, nonce: &str) -> Result<Value, OidcError> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| fail("the ID token is not a JWT"))?;
        // Asymmetric signatures only: never `none`, never a MAC keyed with our secret.
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(fail("the ID token's signature algorithm is not accepted"));
        }
        let key = self.key(&m.jwks_uri, header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[m.issuer.as_str()]);
        v.set_audience(&[self.settings.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        let data = jsonwebtoken::decode::<Value>(id_token, &key, &v)
            .map_err(|e| fail(format!("the ID token does not hold: {:?}", e.kind())))?;
        if data.claims["nonce"].as_str() != Some(nonce) {
            return Err(fail("the ID token is not the answer to this sign-in (its nonce differs)"));
        }
        Ok(data.claims)
    }
}

impl OidcSettings {
    /// Who the claims name, and the broadest role their `role_claim` values map to.
    fn identity(&self, claims: &Value) -> Result<SsoIdentity, OidcError> {
        let s = self;
        let username = claims[s.username_claim.as_str()]
            .as_str()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| fail(format!("the ID token has no {} claim", s.username_claim)))?;
        let values: Vec<&str> = match &claims[s.role_claim.as_str()] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let role = s
            .roles
            .iter()
            .filter(|(value, _)| values.contains(&value.as_str()))
            .map(|(_, role)| *role)
            .reduce(broadest);
        Ok(SsoIdentity { username: username.to_owned(), role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oidc() -> OidcSettings {
        OidcSettings {
            issuer: "https://idp.example".into(),
            client_id: "refloop".into(),
            client_secret: "s".into(),
            redirect_url: "https://refloop.example/login/sso/callback".into(),
            username_claim: "preferred_username".into(),
            role_claim: "groups".into(),
            roles: vec![("care-team".into(), Role::Coordinator), ("it-admins".into(), Role::Admin)],
            label: "Sign in with North Clinic".into(),
        }
    }

    #[test]
    fn the_broadest_mapped_role_wins_and_an_unmapped_account_has_none() {
        let o = oidc();
        let both = json!({"preferred_username": "ana", "groups": ["care-team", "it-admins", "other"]});
        assert_eq!(o.identity(&both).unwrap(), SsoIdentity { username: "ana".into(), role: Some(Role::Admin) });
        let one = json!({"preferred_username": "cole", "groups": "care-team"});
        assert_eq!(o.identity(&one).unwrap().role, Some(Role::Coordinator));
        let none = json!({"preferred_username": "nia", "groups": ["other"]});
        assert_eq!(o.identity(&none).unwrap().role, None);
        assert!(o.identity(&json!({"groups": ["care-team"]})).unwrap_err().0.contains("preferred_username"));
    }
}
