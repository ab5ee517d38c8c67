//! Envoy's bandwidth-limit delay trailers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request side's delays of one exchange, recorded by its request body for the
/// response's trailers.
#[derive(Debug, Default)]
pub struct DelayRecord {
    request_total_ms: AtomicU64,
    request_paced_ms: AtomicU64,
}

impl DelayRecord {
    /// Records the request body's transfer time (`total`) and the part of it spent waiting
    /// for tokens (`paced`).
    pub fn record_request(&self, total: Duration, paced: Duration) {
        self.request_total_ms
            .store(millis(total), Ordering::Release);
        self.request_paced_ms
            .store(millis(paced), Ordering::Release);
    }

    /// The four trailers named `<prefix>-bandwidth-…-delay-ms`, with the response body's
    /// `total` transfer time and `paced` wait (names that cannot be header names are left
    /// out; the prefix is checked when the policy is compiled).
    pub fn trailers(&self, prefix: &str, total: Duration, paced: Duration) -> HeaderMap {
        let values = [
            (
                "request-delay-ms",
                self.request_total_ms.load(Ordering::Acquire),
            ),
            ("response-delay-ms", millis(total)),
            (
                "request-filter-delay-ms",
                self.request_paced_ms.load(Ordering::Acquire),
            ),
            ("response-filter-delay-ms", millis(paced)),
        ];
        let mut trailers = HeaderMap::with_capacity(values.len());
        for (suffix, value) in values {
            let name = if prefix.is_empty() {
                format!("bandwidth-{suffix}")
            } else {
                format!("{prefix}-bandwidth-{suffix}").to_ascii_lowercase()
            };
            if let Ok(name) = HeaderName::try_from(name) {
                trailers.insert(name, HeaderValue::from(value));
            }
        }
        trailers
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_trailers_carry_the_prefix() {
        let record = DelayRecord::default();
        record.record_request(Duration::from_millis(1500), Duration::from_millis(1200));
        let trailers = record.trailers("X-EG", Duration::from_millis(30), Duration::from_millis(0));
        assert_eq!(trailers["x-eg-bandwidth-request-delay-ms"], "1500");
        assert_eq!(trailers["x-eg-bandwidth-request-filter-delay-ms"], "1200");
        assert_eq!(trailers["x-eg-bandwidth-response-delay-ms"], "30");
        assert_eq!(trailers["x-eg-bandwidth-response-filter-delay-ms"], "0");
    }
}
