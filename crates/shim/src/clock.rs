//! Timestamps in Go's RFC3339Nano form (what Docker writes in logs and state), without a
//! date-time dependency: the shim stays small.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `2006-01-02T15:04:05.999999999Z` (UTC, trailing zeros of the fraction trimmed).
pub fn now_rfc3339_nano() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_nano(since.as_secs(), since.subsec_nanos())
}

/// Format seconds + nanoseconds since the Unix epoch.
pub fn rfc3339_nano(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
        // 2000-02-29 is a leap day; 951782400 = 2000-02-29T00:00:00Z
        assert_eq!(
            rfc3339_nano(951_782_400, 5),
            "2000-02-29T00:00:00.000000005Z"
        );
        // 2024-12-31T23:59:59.5Z
        assert_eq!(
            rfc3339_nano(1_735_689_599, 500_000_000),
            "2024-12-31T23:59:59.5Z"
        );
        assert_eq!(
            rfc3339_nano(1_700_000_000, 123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }

    #[test]
    fn now_looks_right() {
        let s = now_rfc3339_nano();
        assert!(
            s.ends_with('Z') && s.len() >= 20 && s.starts_with("20"),
            "{s}"
        );
    }
}
