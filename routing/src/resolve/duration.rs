//! GEP-2257 durations: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g. `1h`, `2m30s`, `500ms`.

use std::time::Duration;

/// Parses a GEP-2257 duration; `None` when it does not follow the grammar.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total += unit * u32::try_from(value).ok()?;
        parts += 1;
    }
    (1..=4).contains(&parts).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_gep_grammar() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2m30s"), Some(Duration::from_secs(150)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Some(Duration::from_millis(3_661_001))
        );
        for bad in ["", "1", "1d", "s", "123456s", "1h1m1s1ms1h", "1.5s", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
