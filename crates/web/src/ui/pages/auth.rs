//! Signing in and out.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    next: String,
    /// The single sign-on button's text, when an identity provider is set up.
    sso: Option<String>,
}

pub async fn login_form(State(s): State<AppState>, Query(q): Query<Params>) -> Response {
    login_page(&s, local_path(q.get("next")), None, StatusCode::OK)
}

fn login_page(s: &AppState, next: String, error: Option<String>, status: StatusCode) -> Response {
    let csrf = refloop_app::new_token();
    let sso = s.oidc.as_ref().map(|o| o.label().to_owned());
    let page = LoginPage { nav: None, demo: ui(s).demo, notice: None, error, csrf: csrf.clone(), next, sso };
    let mut r = render(&page);
    *r.status_mut() = status;
    r.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, 1800));
    r
}

pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Params>,
) -> Result<Response, UiError> {
    let next = local_path(f.get("next"));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::ui::constant_time_eq(expected.as_bytes(), get(&f, "csrf").as_bytes()) {
        return Ok(login_page(&s, next, Some("The sign-in form expired. Try again.".into()), StatusCode::FORBIDDEN));
    }
    let attempt =
        s.app.login(get(&f, "username"), f.get("password").map_or("", String::as_str), Some(addr.ip().to_string()));
    let answer = match attempt.await {
        Err(refloop_app::AppError::Throttled(wait)) => {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let why = format!("Too many failed sign-ins from here. Try again in {minutes} minute(s).");
            let mut page = login_page(&s, next, Some(why), StatusCode::TOO_MANY_REQUESTS);
            page.headers_mut().insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
            return Ok(page);
        }
        other => other?,
    };
    match answer {
        Some(session) => {
            // A second factor owed (or to enrol) comes before the page asked for.
            let to = match session.stage {
                refloop_app::SessionStage::Full => next,
                refloop_app::SessionStage::Mfa => format!("/login/mfa?next={}", crate::ui::percent_encode(&next)),
                refloop_app::SessionStage::Enrol => "/account/mfa".to_owned(),
            };
            let mut r = see_other(&to);
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session.token, refloop_app::SESSION_MAX.as_secs()),
            );
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            Ok(r)
        }
        None => Ok(login_page(
            &s,
            next,
            Some("Wrong username or password. After repeated failures an account is locked for a while; an admin can unlock it.".into()),
            StatusCode::UNAUTHORIZED,
        )),
    }
}

pub async fn logout(
    State(s): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        s.app.logout(token, web.0.actor.remote.clone()).await?;
    }
    let mut r = see_other("/login");
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(r)
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    next: String,
}

fn mfa_page(s: &AppState, csrf: String, next: String, error: Option<String>, status: StatusCode) -> Response {
    let page = MfaPage { nav: None, demo: ui(s).demo, notice: None, error, csrf, next };
    let mut r = render(&page);
    *r.status_mut() = status;
    r
}

/// `GET /login/mfa`: the second sign-in step.
pub async fn mfa_form(State(s): State<AppState>, signing: Signing, Query(q): Query<Params>) -> Response {
    let next = local_path(q.get("next"));
    match signing.0.stage {
        refloop_app::SessionStage::Mfa => mfa_page(&s, signing.0.csrf, next, None, StatusCode::OK),
        refloop_app::SessionStage::Enrol => see_other("/account/mfa"),
        refloop_app::SessionStage::Full => see_other(&next),
    }
}

/// `POST /login/mfa`: a code from the app or a recovery code. Right: a new session cookie.
pub async fn mfa_submit(
    State(s): State<AppState>,
    signing: Signing,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    let Signing(session, token) = signing;
    let web = Web(session);
    web.check_form(&f)?;
    let next = local_path(f.get("next"));
    match s.app.mfa_verify(&token, get(&f, "code"), Some(addr.ip().to_string())).await? {
        Some(new) => {
            let mut r = see_other(&next);
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &new.token, refloop_app::SESSION_MAX.as_secs()));
            Ok(r)
        }
        None => Ok(mfa_page(
            &s,
            web.0.csrf,
            next,
            Some("That code did not work. Use the newest code from the app, or one of your recovery codes.".into()),
            StatusCode::UNAUTHORIZED,
        )),
    }
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    /// Must enrol before anything else (the role requires a second factor).
    required: bool,
    enrolled: bool,
    /// The secret in groups of four, to type into an app.
    secret: String,
    url: String,
    /// Shown once, right after enrolment.
    codes: Vec<String>,
}

async fn enrol_page(s: &AppState, session: &refloop_app::WebSession, error: Option<String>) -> UiResult<Response> {
    let required = session.stage == refloop_app::SessionStage::Enrol;
    let enrolment = s.app.mfa_enrolment(&session.actor).await?;
    let secret = enrolment
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let page = EnrolPage {
        nav: if required { None } else { Web(session.clone()).nav("account") },
        demo: ui(s).demo,
        notice: None,
        error: error.clone(),
        csrf: session.csrf.clone(),
        required,
        enrolled: s.app.mfa_enrolled(&session.actor.name).await?,
        secret,
        url: enrolment.url,
        codes: Vec::new(),
    };
    let mut r = render(&page);
    if error.is_some() {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

/// `GET /account/mfa`: enrol a second factor (required for some roles before anything else).
pub async fn enrol_form(State(s): State<AppState>, signing: Signing) -> UiResult<Response> {
    if signing.0.stage == refloop_app::SessionStage::Mfa {
        return Ok(see_other("/login/mfa"));
    }
    enrol_page(&s, &signing.0, None).await
}

/// `POST /account/mfa`: confirm enrolment with a code; the recovery codes are shown once.
pub async fn enrol_submit(State(s): State<AppState>, signing: Signing, Form(f): Form<Params>) -> UiResult<Response> {
    let Signing(session, token) = signing;
    if session.stage == refloop_app::SessionStage::Mfa {
        return Ok(see_other("/login/mfa"));
    }
    Web(session.clone()).check_form(&f)?;
    match s.app.mfa_confirm(&session.actor, &token, get(&f, "code")).await {
        Ok((codes, upgraded)) => {
            let csrf = upgraded.as_ref().map_or_else(|| session.csrf.clone(), |n| n.csrf.clone());
            let shown = refloop_app::WebSession { csrf, stage: refloop_app::SessionStage::Full, ..session };
            let page = EnrolPage {
                nav: Web(shown.clone()).nav("account"),
                demo: ui(&s).demo,
                notice: Some("Two-step sign-in is on.".into()),
                error: None,
                csrf: shown.csrf.clone(),
                required: false,
                enrolled: true,
                secret: String::new(),
                url: String::new(),
                codes,
            };
            let mut r = render(&page);
            if let Some(new) = upgraded {
                r.headers_mut().append(
                    header::SET_COOKIE,
                    set_cookie(SESSION_COOKIE, &new.token, refloop_app::SESSION_MAX.as_secs()),
                );
            }
            Ok(r)
        }
        Err(refloop_app::AppError::Invalid { message, .. }) => enrol_page(&s, &session, Some(message)).await,
        Err(e) => Err(e.into()),
    }
}

/// The cookie that ties a single sign-on under way to this browser (its `state`). Lax, not
/// Strict: the provider's redirect back is a navigation from another site.
const SSO_COOKIE: &str = "refloop_sso";

fn sso_cookie(value: &str, max_age: i64) -> axum::http::HeaderValue {
    let v = format!("{SSO_COOKIE}={value}; Path=/login/sso; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}");
    axum::http::HeaderValue::from_str(&v).unwrap_or_else(|_| axum::http::HeaderValue::from_static("refloop_invalid=1"))
}

/// `GET /login/sso?next=`: off to the identity provider.
pub async fn sso_start(State(s): State<AppState>, Query(q): Query<Params>) -> UiResult<Response> {
    let Some(oidc) = s.oidc.as_ref() else {
        return Err(UiError(StatusCode::NOT_FOUND, "Single sign-on is not set up here.".into()));
    };
    let start = s.app.sso_begin(&local_path(q.get("next"))).await?;
    let url = oidc.authorize_url(&start).await.map_err(|e| {
        tracing::warn!(error = %e, "single sign-on could not start");
        UiError(
            StatusCode::BAD_GATEWAY,
            format!("Single sign-on is unavailable: {e}. Sign in with a password, or try again later."),
        )
    })?;
    let mut r = see_other(&url);
    r.headers_mut().append(header::SET_COOKIE, sso_cookie(&start.state, refloop_app::SSO_WITHIN.as_secs()));
    Ok(r)
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    next: String,
}

/// `GET /login/sso/callback?code=&state=`: back from the identity provider. The state must
/// be the one this browser set off with (its cookie) and still under way; the code is then
/// exchanged and the ID token checked before a session opens. Answers with a page that moves
/// on by itself: the session cookie (SameSite=Strict) rides only on a navigation from here.
pub async fn sso_callback(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> UiResult<Response> {
    let Some(oidc) = s.oidc.as_ref() else {
        return Err(UiError(StatusCode::NOT_FOUND, "Single sign-on is not set up here.".into()));
    };
    let refused = |why: String| {
        tracing::warn!(remote = %addr.ip(), why = %why, "single sign-on refused");
        UiError(StatusCode::FORBIDDEN, format!("Signing in through the identity provider did not work: {why}."))
    };
    if let Some(e) = q.get("error") {
        let e: String = e.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
        return Err(refused(format!("the provider answered {e}")));
    }
    let state = get(&q, "state");
    let mine = cookie(&headers, SSO_COOKIE).unwrap_or_default();
    if state.is_empty() || !crate::ui::constant_time_eq(state.as_bytes(), mine.as_bytes()) {
        return Err(refused("this sign-in was not started in this browser".into()));
    }
    let Some(pending) = s.app.sso_take(state).await? else {
        return Err(refused("this sign-in ran out or was already used; start again".into()));
    };
    let who = oidc.finish(get(&q, "code"), &pending).await.map_err(|e| refused(e.0))?;
    let remote = Some(addr.ip().to_string());
    let session = s.app.sso_login(&who.username, who.role, remote).await.map_err(|e| match e {
        refloop_app::AppError::Conflict(why) => refused(why),
        other => other.into(),
    })?;
    let page = SignedInPage { nav: None, demo: ui(&s).demo, notice: None, next: local_path(Some(&pending.next)) };
    let mut r = render(&page);
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session.token, refloop_app::SESSION_MAX.as_secs()));
    h.append(header::SET_COOKIE, sso_cookie("", 0));
    Ok(r)
}
