//! The admin's and security pages over real HTTP: who looked at a patient and the audit
//! search, two-step sign-in, single sign-on through a real OpenID provider, the access page.

use std::collections::BTreeMap;

use refloop_app::Role;
use refloop_testkit::{Backend, TestApp};
use serde_json::json;

use crate::ui::{Person, csrf_of, with_user};

on_both_backends!(
    admins_see_who_looked_at_a_patient_and_search_the_audit_log,
    an_admin_enrols_a_second_factor_and_signs_in_with_it,
    staff_sign_in_through_the_practices_openid_provider,
    admins_revoke_tokens_and_end_sessions_from_the_access_page,
);

/// An admin sees on the referral page who looked at the patient (a coordinator's list and
/// read, with the address), and searches the audit log by user, patient, action and period;
/// a coordinator sees neither. The searches are audited too.
async fn admins_see_who_looked_at_a_patient_and_search_the_audit_log(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-look", "referring_provider": "dr-baker", "specialty": "dermatology"}),
        )
        .await;
    let mut casey = Person::new(&t);
    casey.sign_in("casey", "correct horse battery").await;
    assert_eq!(casey.get(&format!("/referrals/{id}")).await.status, 200);
    let page = casey.get(&format!("/referrals/{id}")).await;
    assert!(!page.html.contains("Who looked at this patient"), "admins only");
    assert_eq!(casey.get("/admin/audit").await.status, 403);

    let mut avery = Person::new(&t);
    avery.sign_in("avery", "correct horse battery").await;
    let page = avery.get(&format!("/referrals/{id}")).await;
    assert_eq!(page.status, 200);
    let section = page.html.split("Who looked at this patient").nth(1).expect("the section, for an admin");
    assert!(section.contains("coordinator:casey") && section.contains("127.0.0.1"), "{section}");
    assert!(section.contains("admin:avery"), "this page's own read is listed");
    assert!(section.contains("/admin/audit?patient=p-look"));

    let found = avery.get("/admin/audit?user=casey&action=read").await;
    assert_eq!(found.status, 200);
    let rows = found.html.split("<tbody>").nth(1).unwrap();
    assert!(rows.contains(&id) && rows.contains("coordinator:casey") && !rows.contains("admin:avery"), "{rows}");
    let by_patient = avery.get("/admin/audit?patient=p-look&action=create").await;
    assert!(by_patient.html.split("<tbody>").nth(1).unwrap().contains(&id), "the referral made for the patient");
    let none = avery.get("/admin/audit?user=casey&to=2001-01-01").await;
    assert!(none.html.contains("No audit rows match."));
    let bad = avery.get("/admin/audit?from=yesterday").await;
    assert_eq!(bad.status, 422);
    let audit = t.app.store().audit_log(100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "search" && a.resource_type == "audit" && a.actor == "admin:avery"));
}

/// The TOTP code for `secret` (base32, as the page shows it) `ahead` steps from now, as an
/// authenticator app shows it.
fn totp_code(secret: &str, ahead: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.replace(' ', "")).to_bytes().unwrap();
    let t = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into()).unwrap();
    let now = refloop_app::Clock::now(&refloop_app::SystemClock).as_second() as u64;
    t.generate(now + 30 * ahead)
}

/// An admin (whose role needs a second factor) can reach nothing until they enrol; a wrong
/// code is refused and the same key shown again; the right one shows ten recovery codes once.
/// Sign-in then asks for a code after the password: a code is taken once (a replay is
/// refused), a recovery code works once, wrong codes count towards the lockout, and each step
/// is audited.
async fn an_admin_enrols_a_second_factor_and_signs_in_with_it(b: Backend) {
    let t = TestApp::builder(b).admin_mfa().spawn().await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let mut p = Person::new(&t);
    let first = p.sign_in("avery", "correct horse battery").await;
    assert_eq!((first.status, first.location.as_str()), (303, "/account/mfa"));
    assert_eq!(p.get("/worklist").await.location, "/account/mfa", "nothing else until enrolled");
    let enrol = p.get("/account/mfa").await;
    assert_eq!(enrol.status, 200);
    let at = enrol.html.find("id=\"totp-secret\">").unwrap() + 17;
    let secret = enrol.html[at..].split('<').next().unwrap().to_owned();
    assert!(enrol.html.contains("otpauth://totp/refloop:avery?"), "the link an app reads");
    let csrf = csrf_of(&enrol.html);

    let wrong = p.post("/account/mfa", &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.html.contains(&secret), "the same key, so the app already set up still matches");
    let done = p.post("/account/mfa", &[("csrf", &csrf), ("code", &totp_code(&secret, 0))]).await;
    assert_eq!(done.status, 200, "{}", done.html);
    let codes: Vec<String> =
        done.html.split("<li><code>").skip(1).map(|c| c.split('<').next().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10, "{}", done.html);
    assert_eq!(p.get("/worklist").await.status, 200, "the new session cookie is a full one");
    assert!(!p.get("/account/mfa").await.html.contains(&codes[0]), "recovery codes are shown once");

    // Next sign-in: the password, then a code.
    let mut p = Person::new(&t);
    let pw = p.sign_in("avery", "correct horse battery").await;
    assert_eq!((pw.status, pw.location.as_str()), (303, "/login/mfa?next=/worklist"));
    assert_eq!(p.get("/worklist").await.location, "/login/mfa?next=/worklist");
    let half = p.cookies.get("refloop_session").cloned().unwrap();
    let form = p.get("/login/mfa?next=/worklist").await;
    let csrf = csrf_of(&form.html);
    let next_code = totp_code(&secret, 1);
    let ok = p.post("/login/mfa", &[("csrf", &csrf), ("next", "/worklist"), ("code", &next_code)]).await;
    assert_eq!((ok.status, ok.location.as_str()), (303, "/worklist"));
    assert_ne!(p.cookies.get("refloop_session"), Some(&half), "a new session after the second factor");
    assert_eq!(p.get("/worklist").await.status, 200);

    // The same code again (seen over a shoulder) is refused; a recovery code works once.
    let mut p = Person::new(&t);
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    let replay = p.post("/login/mfa", &[("csrf", &csrf), ("code", &next_code)]).await;
    assert_eq!(replay.status, 401);
    let typed = codes[3].to_uppercase().replace('-', " ");
    let by_code = p.post("/login/mfa", &[("csrf", &csrf), ("next", "/"), ("code", &typed)]).await;
    assert_eq!((by_code.status, by_code.location.as_str()), (303, "/"));
    let mut p = Person::new(&t);
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", &codes[3])]).await.status, 401, "used once");

    let audit = t.app.store().audit_log(100).await.unwrap();
    for action in ["mfa-enrol-failed", "mfa-enrol", "login-password", "mfa-use", "mfa-failed", "mfa-recovery-code-use"]
    {
        assert!(audit.iter().any(|a| a.action == action && a.resource_id == "avery"), "{action} is audited");
    }
    // Wrong codes lock the account like wrong passwords (one so far, five lock), and a right
    // password in between does not reset the count.
    p.sign_in("avery", "correct horse battery").await;
    let csrf = csrf_of(&p.get("/login/mfa").await.html);
    for _ in 0..4 {
        assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", "123456")]).await.status, 401);
    }
    let user = t.app.store().user("avery").await.unwrap().unwrap();
    assert!(user.locked_until.is_some(), "locked after five failures in a row");
    let code = totp_code(&secret, 0);
    assert_eq!(p.post("/login/mfa", &[("csrf", &csrf), ("code", &code)]).await.status, 401, "even a right code");

    // A lost phone: the operator resets it, and the admin enrols again at the next sign-in.
    t.app.unlock_user("avery", &refloop_app::Actor::system("cli")).await.unwrap();
    t.app.mfa_reset("avery", &refloop_app::Actor::system("cli")).await.unwrap();
    let mut p = Person::new(&t);
    assert_eq!(p.sign_in("avery", "correct horse battery").await.location, "/account/mfa");
}

/// A browser at the identity provider: follows its redirects, keeps its cookies, and fills
/// its sign-in and consent forms, until the provider sends it back to us (the URL returned).
async fn at_the_provider(start: &str, login: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let origin = start.split('/').take(3).collect::<Vec<_>>().join("/");
    let mut next = (start.to_owned(), None::<Vec<(String, String)>>);
    for _ in 0..12 {
        let (url, form) = next.clone();
        let jar = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = match &form {
            Some(f) => http.post(&url).form(f),
            None => http.get(&url),
        };
        let resp = req.header("cookie", jar).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let (kv, _) = c.to_str().unwrap().split_once(';').unwrap_or((c.to_str().unwrap(), ""));
            let (k, v) = kv.split_once('=').unwrap();
            cookies.insert(k.to_owned(), v.to_owned());
        }
        if let Some(to) = resp.headers().get("location") {
            let to = to.to_str().unwrap();
            let to = if to.starts_with('/') { format!("{origin}{to}") } else { to.to_owned() };
            if !to.starts_with(&origin) {
                return to;
            }
            next = (to, None);
            continue;
        }
        let html = resp.text().await.unwrap();
        let action = html.split("action=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form").to_owned();
        let prompt =
            html.split("name=\"prompt\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
        let mut fields = vec![("prompt".to_owned(), prompt.clone())];
        if prompt == "login" {
            fields.push(("login".into(), login.into()));
            fields.push(("password".into(), "whatever the provider checks".into()));
        }
        next = (action, Some(fields));
    }
    panic!("the provider never sent the browser back");
}

/// Single sign-on against a real OpenID provider (npm `oidc-provider`) on loopback: the
/// sign-in page offers it; a member of the admins' group comes back signed in as an admin
/// and one of the care team as a coordinator (their roles from the `groups` claim, the
/// broadest winning); an account with no mapped group is refused; a callback replayed, or
/// begun in another browser, or naming a local account's name, opens nothing; each
/// sign-in is audited.
async fn staff_sign_in_through_the_practices_openid_provider(b: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/login/sso/callback", listener.local_addr().unwrap());
    let op = refloop_testkit::OidcProvider::start("refloop-test", "a client secret for tests", &callback);
    let builder = TestApp::builder(b);
    let oidc = refloop_web::Oidc::new(refloop_web::OidcSettings {
        issuer: op.issuer.clone(),
        client_id: "refloop-test".into(),
        client_secret: "a client secret for tests".into(),
        redirect_url: callback.clone(),
        username_claim: "preferred_username".into(),
        role_claim: "groups".into(),
        roles: vec![
            ("refloop-admins".into(), Role::Admin),
            ("care-team".into(), Role::Coordinator),
            ("staff".into(), Role::Viewer),
        ],
        label: "Sign in with North Clinic".into(),
    });
    let t = builder.sso(listener, oidc).spawn().await;
    t.app.save_user("casey", Role::Coordinator, "correct horse battery").await.unwrap();

    let mut p = Person::new(&t);
    let form = p.get("/login?next=/worklist").await;
    assert!(form.html.contains("Sign in with North Clinic") && form.html.contains("/login/sso?next="), "{}", form.html);
    let out = p.get("/login/sso?next=/worklist").await;
    assert_eq!(out.status, 303);
    assert!(
        out.location.starts_with(&format!("{}/auth?", op.issuer))
            && out.location.contains("code_challenge_method=S256")
    );
    let back = at_the_provider(&out.location, "ana").await;
    assert!(back.starts_with(&callback), "{back}");
    let path = back.trim_start_matches(&t.base).to_owned();
    let signed = p.get(&path).await;
    assert_eq!(signed.status, 200, "{}", signed.html);
    assert!(signed.html.contains("url=/worklist"), "moves on to where the person was going");
    assert_eq!(p.get("/worklist").await.status, 200);
    assert_eq!(p.get("/admin/audit").await.status, 200, "ana is an admin (group refloop-admins)");

    // The same callback again (a replay) opens nothing.
    let mut replay = Person::new(&t);
    replay.cookies = p.cookies.clone();
    replay.cookies.remove("refloop_session");
    assert_eq!(replay.get(&path).await.status, 403);

    // Cole is care team and staff: a coordinator.
    let mut c = Person::new(&t);
    let out = c.get("/login/sso?next=/").await;
    let back = at_the_provider(&out.location, "cole").await;
    assert_eq!(c.get(back.trim_start_matches(&t.base)).await.status, 200);
    assert_eq!(c.get("/admin/audit").await.status, 403);
    assert_eq!(t.app.store().user("cole").await.unwrap().unwrap().role, Role::Coordinator);

    // A callback begun in another browser (no matching cookie) is refused.
    let mut other = Person::new(&t);
    let out = other.get("/login/sso").await;
    let back = at_the_provider(&out.location, "cole").await;
    let mut stranger = Person::new(&t);
    assert_eq!(stranger.get(back.trim_start_matches(&t.base)).await.status, 403);

    // An account the provider knows but with no mapped group; a local account's name.
    for who in ["zed", "casey"] {
        let mut z = Person::new(&t);
        let out = z.get("/login/sso").await;
        let back = at_the_provider(&out.location, who).await;
        let page = z.get(back.trim_start_matches(&t.base)).await;
        assert_eq!(page.status, 403, "{who}");
        assert!(!z.cookies.contains_key("refloop_session"), "{who}");
    }
    assert!(!t.app.store().user("casey").await.unwrap().unwrap().sso, "the local account stays local");
    let audit = t.app.store().audit_log(100).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "login-sso" && a.actor == "admin:ana"));
    for who in ["zed", "casey"] {
        assert!(audit.iter().any(|a| a.action == "login-sso-refused" && a.resource_id == who), "{who}");
    }
    assert!(t.app.store().user("zed").await.unwrap().is_none(), "no account for someone without a role");
    // A single sign-on account has no password here.
    let mut pw = Person::new(&t);
    assert_eq!(pw.sign_in("ana", "!sso").await.status, 401);
}

/// The access page lists tokens and people (with their live sessions, how they sign in and
/// whether they are locked out) to admins only; an admin revokes a token (refused at once),
/// ends a person's sessions (signed out at once) and unlocks an account; each is audited.
async fn admins_revoke_tokens_and_end_sessions_from_the_access_page(b: Backend) {
    let t = with_user(b, Role::Coordinator).await;
    t.app.save_user("avery", Role::Admin, "correct horse battery").await.unwrap();
    let ehr = t.token(Role::Integration).await;
    let mut casey = Person::new(&t);
    casey.sign_in("casey", "correct horse battery").await;
    assert_eq!(casey.get("/admin/access").await.status, 403);
    let mut avery = Person::new(&t);
    avery.sign_in("avery", "correct horse battery").await;
    let page = avery.get("/admin/access").await;
    assert_eq!(page.status, 200);
    let people = page.html.split("id=\"people\"").nth(1).unwrap().split("</table>").next().unwrap();
    let casey_row = people.split("<tr>").find(|r| r.contains("<td>casey</td>")).unwrap();
    assert!(casey_row.contains("<td>password</td>") && casey_row.contains("<td class=\"num\">1</td>"), "{casey_row}");
    let tokens = page.html.split("id=\"tokens\"").nth(1).unwrap();
    let id = tokens
        .split("<tr><td class=\"id\">")
        .find(|r| r.contains("test-integration"))
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let csrf = csrf_of(&page.html);

    let forged = avery.post(&format!("/admin/access/tokens/{id}/revoke"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(t.get_as(&ehr, "/fhir/metadata").await.status, 200, "still live");
    let revoked = avery.post(&format!("/admin/access/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!((revoked.status, revoked.location.as_str()), (303, "/admin/access?done=revoked"));
    let refused = t.post_as(&ehr, "/api/v1/referrals", json!({"patient_id": "x", "referring_provider": "dr-a"})).await;
    assert_eq!(refused.status, 401, "a revoked token is refused at once");

    let ended = avery.post("/admin/access/users/casey/end-sessions", &[("csrf", &csrf)]).await;
    assert_eq!(ended.location, "/admin/access?done=ended");
    assert_eq!(casey.get("/worklist").await.status, 303, "casey is signed out");
    for _ in 0..5 {
        casey.sign_in("casey", "a wrong password!").await;
    }
    let page = avery.get("/admin/access").await;
    assert!(page.html.contains("<td>casey</td><td>coordinator</td><td>locked</td>"), "locked after five failures");
    avery.post("/admin/access/users/casey/unlock", &[("csrf", &csrf)]).await;
    assert_eq!(casey.sign_in("casey", "correct horse battery").await.status, 303);

    let audit = t.app.store().audit_log(100).await.unwrap();
    for (action, id) in
        [("revoke", id.as_str()), ("end-sessions", "casey"), ("unlock", "casey"), ("view", "tokens,users")]
    {
        assert!(
            audit.iter().any(|a| a.action == action && a.resource_id == id && a.actor == "admin:avery"),
            "{action}"
        );
    }
}
