//! `POST /hl7v2`: one HL7 v2 message in the body, its ACK in the answer.

use axum::{
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use refloop_app::{Permission, Via};
use refloop_hl7::{AckCode, AckError, ErrorCode, Origin, build_ack};

use crate::{AppState, auth::Auth, error::ApiResult};

const HL7: &str = "application/hl7-v2; charset=utf-8";

/// Takes one message. 200 with the ACK (AA, AE or AR) in the body; in enhanced mode the
/// accept ACK (CA, CE, CR) when MSH-15 asks for it, else the application ACK when MSH-16 does;
/// 204 when no ACK is due (an ACK was sent, or enhanced mode asks for none); 503 with an AR
/// when it could not be stored. A message whose MSH-3/MSH-4 are not those of the known sender
/// named like the token gets an AR ("unknown sender") and nothing is kept.
#[utoipa::path(post, path = "/hl7v2", tag = "hl7v2",
    request_body(content = String, content_type = "application/hl7-v2", description = "one HL7 v2 message (ER7)"),
    responses((status = 200, description = "the ACK", content_type = "application/hl7-v2"), (status = 204), (status = 503)),
    security(("bearer" = [])))]
pub async fn receive(State(s): State<AppState>, auth: Auth, body: Bytes) -> ApiResult<Response> {
    let actor = auth.require(Permission::WriteReferrals)?;
    // Over HTTP the sender is the token's name.
    if let Some(refused) = s.hl7.refuse_unknown(&body, Origin::Http(&actor.name)) {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, HL7)], refused).into_response());
    }
    Ok(match s.hl7.receive(&body, &Via::http(actor.remote.clone(), &actor.name)).await {
        // Enhanced mode: one answer per request — the accept ACK when due, else the application ACK.
        Ok(reply) => match reply.ack.or(reply.application_ack) {
            Some(ack) => (StatusCode::OK, [(header::CONTENT_TYPE, HL7)], ack).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        Err(e) => {
            tracing::error!(error = %e, "could not store an HL7 message");
            let err =
                AckError::new(ErrorCode::InternalError, "storage unavailable: the message was not kept; resend later");
            let ack = build_ack(Err(&body), AckCode::AR, Some(&err), "REFLOOP", "");
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, HL7)], ack).into_response()
        }
    })
}
