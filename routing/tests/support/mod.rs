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
