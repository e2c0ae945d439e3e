//! Timestamps: parsed from any RFC 3339 offset, kept in UTC with microsecond precision,
//! and always written in one fixed form so that the canonical bytes are deterministic.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// A UTC instant with microsecond precision, written as `2026-01-02T03:04:05.000006Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest instant with an RFC 3339 form (0000-01-01T00:00:00Z).
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000_000);

    /// Microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Option<Self> {
        // Only years 0000..=9999 have an RFC 3339 form.
        const LOWEST: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        const HIGHEST: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        (LOWEST..=HIGHEST)
            .contains(&micros)
            .then_some(Timestamp(micros))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Converts from a clock reading.
    pub fn from_datetime(dt: OffsetDateTime) -> Option<Self> {
        let micros = dt.unix_timestamp_nanos().div_euclid(1_000);
        Self::from_micros(i64::try_from(micros).ok()?)
    }

    /// Parses RFC 3339 with any offset; sub-microsecond digits are dropped. A leap second
    /// (`:60`) is refused: UTC microseconds cannot hold it, and it is never moved silently.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.get(16..19) == Some(":60") {
            return Err(format!(
                "`{text}` is a leap second, which cannot be stored exactly; send the instant before it (…:59.999999) or after it"
            ));
        }
        let dt = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))?;
        Self::from_datetime(dt).ok_or_else(|| format!("`{text}` is out of range"))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000)
            .expect("range checked at construction")
            .to_offset(UtcOffset::UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_utc_micros() {
        let cases = [
            ("2026-11-22T13:53:55Z", "2026-11-22T13:53:55.000000Z"),
            (
                "2026-11-22T13:53:55.1234567Z",
                "2026-11-22T13:53:55.123456Z",
            ),
            ("2026-11-22T15:53:55.5+02:00", "2026-11-22T13:53:55.500000Z"),
            ("2026-11-22t13:53:55z", "2026-11-22T13:53:55.000000Z"),
            ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for input in [
            "2026-11-22",
            "2026-11-22T13:53:55",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "",
        ] {
            assert!(Timestamp::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn refuses_leap_seconds_instead_of_moving_them() {
        for input in [
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
        ] {
            let err = Timestamp::parse(input).unwrap_err();
            assert!(err.contains("leap second"), "{input}: {err}");
        }
    }

    #[test]
    fn round_trips_and_orders() {
        let a = Timestamp::parse("2026-01-01T00:00:00.000001Z").unwrap();
        let b = Timestamp::parse("2026-01-01T00:00:00.000002Z").unwrap();
        assert!(a < b);
        assert_eq!(Timestamp::parse(&a.to_string()).unwrap(), a);
        assert_eq!(Timestamp::from_micros(a.as_micros()), Some(a));
    }
}
