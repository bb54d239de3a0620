//! `/api/v1/channels`: how each outbound channel is connected (live, simulated or off) and,
//! for those that reach someone, their last success and last failure.

use axum::{Json, extract::State};
use refloop_app::Permission;

use crate::{
    AppState,
    auth::Auth,
    dto::{ChannelList, ChannelView},
    error::ApiResult,
};

/// Each outbound channel's mode and last activity.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels",
    responses((status = 200, body = ChannelList)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<ChannelList>> {
    auth.require(Permission::Read)?;
    let items = s.app.channel_status().await?.into_iter().map(ChannelView::from).collect();
    Ok(Json(ChannelList { items }))
}
