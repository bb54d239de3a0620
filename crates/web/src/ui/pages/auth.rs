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
}

pub async fn login_form(State(s): State<AppState>, Query(q): Query<Params>) -> Response {
    login_page(&s, local_path(q.get("next")), None, StatusCode::OK)
}

fn login_page(s: &AppState, next: String, error: Option<String>, status: StatusCode) -> Response {
    let csrf = refloop_app::new_token();
    let page = LoginPage { nav: None, demo: ui(s).demo, notice: None, error, csrf: csrf.clone(), next };
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
            let mut r = Redirect::to(&next).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
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
