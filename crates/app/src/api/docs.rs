//! The OpenAPI document's frame (title, security schemes, tags) and the
//! answers every operation shares, added here once rather than on each
//! route: the rate limit, the credential checks, the request limits and
//! the Idempotency-Key's own answers. Each route documents only its own.

use std::collections::btree_map::Entry;

use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The OpenAPI document's frame; the paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "updown",
        description = "Daily Up/Down parimutuel rounds on a NASDAQ close, in micro-USDC (1 USDC = 1000000). \
            Programs authenticate with `Authorization: Bearer <api key>` (from `POST /users`); people on the web \
            pages with the session cookie from `POST /sessions`; operators with their own token (`op_...`), their \
            console session from `POST /admin/sessions`, or the break-glass admin token.",
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "account", description = "sign up, sign in, your account, keys, limits, statement"),
        (name = "bets"), (name = "rounds"), (name = "withdrawals"), (name = "deposits"),
        (name = "events", description = "the live stream (Server-Sent Events)"),
        (name = "admin", description = "the operators' routes: each open to the roles of what it touches"),
        (name = "operations", description = "health, metrics, TVL"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme("api_key", bearer("a user's API key (ud_...)"));
        components.add_security_scheme("admin_token", bearer("an operator's own token (op_..., from `updown operator token`), open to the roles the README's table names for each route; or ADMIN_TOKEN, break-glass, audited at every use"));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::auth::SESSION_COOKIE,
                "set by POST /sessions; state changes need an Origin matching Host",
            ))),
        );
        components.add_security_scheme(
            "operator_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::auth::OPERATOR_COOKIE,
                "an operator's console session, set by POST /admin/sessions (Path=/admin); \
                 open to the same roles as their token; state changes need an Origin matching Host",
            ))),
        );
    }
}

/// Adds to every operation the answers the layers around it can give.
pub fn add_shared_answers(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        let operations = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Delete, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                add_to(method, operation);
            }
        }
    }
}

fn add_to(method: HttpMethod, operation: &mut Operation) {
    // Every route open to an operator's token is open to their console
    // session too (the same extractor takes either).
    let admin_route = operation
        .security
        .iter()
        .flatten()
        .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("admin_token").is_some()));
    if admin_route {
        operation.security.get_or_insert_with(Vec::new).push(
            utoipa::openapi::security::SecurityRequirement::new(
                "operator_session",
                Vec::<String>::new(),
            ),
        );
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let keyed = parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Header && p.name == "Idempotency-Key");
    let takes_input = !parameters.is_empty() || operation.request_body.is_some();
    let schemes: Vec<&str> = operation
        .security
        .iter()
        .flatten()
        .flat_map(|requirement| {
            serde_json::to_value(requirement)
                .ok()
                .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .unwrap_or_default()
        })
        .map(|name| match name.as_str() {
            "api_key" => "api_key",
            "session" => "session",
            "admin_token" | "operator_session" => "admin_token",
            _ => "other",
        })
        .collect();
    let mut shared: Vec<(&str, &str)> = vec![(
        "429",
        "rate limited: too many requests from this address or credential (see Retry-After)",
    )];
    shared.push((
        "503",
        "timeout: no answer within 10 s; the request may still take effect: retry it with the same Idempotency-Key, or look before repeating one that has none (see Retry-After)",
    ));
    if !schemes.is_empty() {
        shared.push(("401", "no or a bad credential"));
    }
    if schemes.contains(&"admin_token") {
        shared.push((
            "403",
            "forbidden: the operator's role does not open this route (see the README's role table)",
        ));
    } else if schemes.contains(&"session") && method != HttpMethod::Get {
        shared.push((
            "403",
            "a request with the session cookie from another origin (Origin must match Host)",
        ));
    }
    if takes_input {
        shared.push((
            "400",
            "invalid input: the request does not match this document",
        ));
    }
    if operation.request_body.is_some() {
        shared.push(("413", "a body larger than 64 KiB"));
    }
    if keyed {
        shared.push((
            "409",
            "idempotency_in_progress: a request with this Idempotency-Key is still being processed; retry shortly",
        ));
        shared.push((
            "422",
            "idempotency_mismatch: this Idempotency-Key was used with a different request",
        ));
    }
    for (status, description) in shared {
        match operation.responses.responses.entry(status.to_string()) {
            Entry::Vacant(entry) => {
                entry.insert(error_answer(description).into());
            }
            // A route's own 503 (its own reason to be unavailable) says it
            // may also be the timeout; its other answers say it all.
            Entry::Occupied(mut entry) if status == "503" => match entry.get_mut() {
                RefOr::T(own) if !own.description.contains(description) => {
                    own.description = format!("{}; or {description}", own.description);
                }
                _ => {}
            },
            Entry::Occupied(_) => {}
        }
    }
}

fn error_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
