//! `GET /b/{code}`: the short booking link in a patient's text. It names a referral by a hash
//! of its id (no patient data); opening it records the click on the referral and sends the
//! patient on to the specialist's booking page. Public: the patient has no account.

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::AppState;

pub async fn open(State(s): State<AppState>, Path(code): Path<String>) -> Response {
    let found = match s.app.open_booking_link(&code).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "a booking link could not be read");
            None
        }
    };
    let mut resp = match found {
        Some(target) => match HeaderValue::from_str(&target) {
            Ok(location) => {
                let mut r = StatusCode::FOUND.into_response();
                r.headers_mut().insert(header::LOCATION, location);
                r
            }
            Err(_) => not_found(&s),
        },
        None => not_found(&s),
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The booking page never learns the code it came from.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// A page for a link that books nothing (any more): call the practice instead.
fn not_found(s: &AppState) -> Response {
    let texts = s.app.texts();
    let call = if texts.practice_phone.is_empty() {
        "Please call your doctor's office to book.".to_owned()
    } else {
        format!("Please call {} to book.", crate::escape_markup(&texts.practice_phone))
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Booking link</title></head><body><main><h1>This booking link \
         does not work</h1><p>{call}</p></main></body></html>"
    );
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}
