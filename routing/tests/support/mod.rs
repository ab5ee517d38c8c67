//! Helpers shared by the routing integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use routing::resolve::Resolution;

/// The reason of the first `Accepted` condition of the object named `name` (panics if there
/// is none: the test expects one).
pub fn accepted_reason(resolution: &Resolution, name: &str) -> &'static str {
    let status = resolution
        .statuses
        .iter()
        .find(|s| s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"));
    status
        .condition("Accepted")
        .unwrap_or_else(|| panic!("no Accepted condition for {name}"))
        .reason
}

/// A routed request's outcome for assertions: the response's status code (`"200"`), or the
/// [`RouteError`](routing::router::RouteError) variant's name (`"NoRoute"`).
pub fn outcome<B>(result: &Result<http::Response<B>, routing::router::RouteError>) -> String {
    match result {
        Ok(response) => response.status().as_u16().to_string(),
        Err(error) => {
            let debug = format!("{error:?}");
            debug
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_owned()
        }
    }
}
