//! `POST /users`: sign up (with a password to sign in to the web pages);
//! the answer carries an API key, shown once.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::services::App;
use crate::wire::UserOut;

pub fn router() -> Router<App> {
    Router::new().route("/users", post(create_user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    /// For signing in to the web pages (`POST /sessions`); 8 to 128
    /// characters. Programs need only the API key.
    password: Option<String>,
}

#[derive(Serialize)]
struct CreatedUser {
    user: UserOut,
    api_key_id: i64,
    /// Shown only in this answer; stored as a hash.
    api_key: String,
}

async fn create_user(
    State(app): State<App>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let Json(body) = body?;
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
