//! Cursor pagination for lists, newest first: `?limit=<n>&before=<id>`,
//! where `before` is the last `id` of the previous page. An id never
//! moves, so pages neither skip nor repeat rows while new ones arrive.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::Deserialize;

use super::ApiError;

/// Most rows one page returns.
pub const MAX_PAGE: i64 = 1_000;
/// Rows a page returns when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 100;

/// `?limit=&before=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Rows to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only rows older than this id: the last id of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
}

impl Page {
    /// The page asked for, checked.
    pub fn from_query(query: Result<Query<Page>, QueryRejection>) -> Result<Page, ApiError> {
        let Query(page) = query?;
        page.check()?;
        Ok(page)
    }

    fn check(&self) -> Result<(), ApiError> {
        if !(1..=MAX_PAGE).contains(&self.limit()) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        if self.before.is_some_and(|before| before < 1) {
            return Err(ApiError::invalid("before must be a positive id"));
        }
        Ok(())
    }

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_PAGE)
    }
}
