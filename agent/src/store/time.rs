//! Conversions between `SystemTime`, the stored unix microseconds and RFC 3339 text.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest microsecond value that formats as RFC 3339 (9999-12-31T23:59:59.999999Z).
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Unix microseconds of `t`, clamped to the range RFC 3339 can show (1970 to year 9999).
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).map_or(MAX_MICROS, |m| m.min(MAX_MICROS)),
        Err(_) => 0,
    }
}

/// Microseconds of a duration, saturating at `i64::MAX`.
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `SystemTime` of stored unix microseconds, clamped like [`to_micros`].
pub(crate) fn from_micros(micros: i64) -> SystemTime {
    let micros = micros.clamp(0, MAX_MICROS).unsigned_abs();
    UNIX_EPOCH + Duration::from_micros(micros)
}

/// RFC 3339 UTC text with microseconds of stored unix microseconds.
pub(crate) fn format_micros(micros: i64) -> String {
    humantime::format_rfc3339_micros(from_micros(micros)).to_string()
}

/// Whole milliseconds from `start` to `end` (both unix microseconds); `None` if `end` is earlier.
pub(crate) fn duration_ms(start: i64, end: i64) -> Option<u64> {
    let us = end.checked_sub(start)?;
    u64::try_from(us).ok().map(|us| us / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_micros_cases() {
        let cases: &[(SystemTime, i64)] = &[
            (UNIX_EPOCH, 0),
            (UNIX_EPOCH + Duration::from_nanos(1_999), 1),
            (
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                1_700_000_000_000_000,
            ),
            (UNIX_EPOCH - Duration::from_secs(5), 0),
            (
                UNIX_EPOCH + Duration::from_secs(400_000_000_000),
                MAX_MICROS,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(to_micros(*t), *want, "{t:?}");
        }
    }

    #[test]
    fn format_micros_cases() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_700_000_000_123_456, "2023-11-14T22:13:20.123456Z"),
            (-1, "1970-01-01T00:00:00.000000Z"),
            (i64::MAX, "9999-12-31T23:59:59.999999Z"),
        ];
        for (micros, want) in cases {
            assert_eq!(format_micros(*micros), *want, "{micros}");
        }
    }

    #[test]
    fn round_trip_keeps_microseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_712_345_678_901_234);
        assert_eq!(from_micros(to_micros(t)), t);
    }

    #[test]
    fn duration_ms_cases() {
        let cases: &[(i64, i64, Option<u64>)] = &[
            (0, 0, Some(0)),
            (1_000, 2_999, Some(1)),
            (5_000_000, 7_500_000, Some(2_500)),
            (2, 1, None),
            (i64::MIN, i64::MAX, None),
        ];
        for (start, end, want) in cases {
            assert_eq!(duration_ms(*start, *end), *want, "{start}..{end}");
        }
    }
}
