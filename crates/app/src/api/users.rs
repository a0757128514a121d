//! `POST /users`: sign up (with a password to sign in to the web pages);
//! the answer carries an API key, shown once.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::services::App;
use crate::wire::UserOut;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(create_user))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]$",
        max_length = 254,
        example = "ann@example.com"
    )]
    email: String,
    /// For signing in to the web pages (`POST /sessions`); 8 to 128
    /// characters. Programs need only the API key.
    #[schema(min_length = 8, max_length = 128)]
    password: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CreatedUser {
    user: UserOut,
    api_key_id: i64,
    /// Shown only in this answer; stored as a hash.
    api_key: String,
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "account",
    request_body = NewUser,
    responses(
        (status = 201, description = "the user and an API key, shown once", body = CreatedUser),
        (status = 409, description = "a user with this email exists", body = crate::api::ErrorBody),
    ),
)]
async fn create_user(
    State(app): State<App>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let Json(body) = body?;
    super::shapes::email(&body.email)?;
    if let Some(password) = &body.password {
        crate::services::check_password(password)?;
    }
    let (user, api_key_id, api_key) = app.create_user_with_key(&body.email).await?;
    if let Some(password) = &body.password {
        app.set_password(user.id, password).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserOut::from(&user),
            api_key_id,
            api_key,
        }),
    ))
}
