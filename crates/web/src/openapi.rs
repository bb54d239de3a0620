//! The OpenAPI document, generated from the handlers and types so it cannot drift.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{auth::Auth, dto, error, routes};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "refloop", description = "Closes the loop on patient referrals."),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::referrals::create,
        routes::referrals::list,
        routes::referrals::show,
        routes::referrals::record_event,
        routes::referrals::send_sms,
        routes::tasks::list,
        routes::tasks::claim,
        routes::tasks::claim_next,
        routes::tasks::complete,
        routes::tasks::outbox,
        routes::channels::list,
        routes::clock::show,
        routes::clock::advance,
        routes::hl7v2::receive,
        routes::inbox::list,
        routes::inbox::dead_letters,
        routes::inbox::show,
        routes::inbox::retry,
        routes::inbox::apply,
        routes::inbox::dismiss,
        routes::documents::list,
        routes::documents::file,
        routes::documents::dismiss,
        routes::reports::closure,
        routes::reports::cms50,
        routes::specialists::list,
        routes::specialists::save,
        document,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, dto::PatientBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document")), security(("bearer" = [])))]
pub async fn document(_auth: Auth) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
