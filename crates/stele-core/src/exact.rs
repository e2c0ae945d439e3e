//! Reading free-form JSON (`details`) exactly as sent: no member name twice in any object
//! (I-JSON, RFC 7493), and no number whose canonical form would denote another value
//! (`18446744073709551617` would become `18446744073709552000`, `1e-400` would become `0`).
//! Such input is refused, never silently rewritten: the leaf hash covers what is stored.

use crate::canonical;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::fmt;

/// `details`: an object, read exactly (see the module comment). `null` means absent.
pub(crate) fn details<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    let mut path = String::new();
    match read(raw.get(), &mut path).map_err(de::Error::custom)? {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        _ => Err(de::Error::custom("must be an object")),
    }
}

/// Parses one JSON value (already known to be well-formed) exactly. `path` names where it
/// sits inside `details`, for error messages.
fn read(text: &str, path: &mut String) -> Result<Value, String> {
    let text = text.trim();
    let at = |path: &str| {
        if path.is_empty() {
            String::new()
        } else {
            format!("`{path}`: ")
        }
    };
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: Members =
                serde_json::from_str(text).map_err(|e| format!("{}{e}", at(path)))?;
            let mut map = Map::with_capacity(members.0.len());
            for (key, raw) in members.0 {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key);
                if map.contains_key(&key) {
                    return Err(format!(
                        "{}member name appears twice in one object",
                        at(path)
                    ));
                }
                let value = read(raw.get(), path)?;
                path.truncate(len);
                map.insert(key, value);
            }
            Ok(Value::Object(map))
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> =
                serde_json::from_str(text).map_err(|e| format!("{}{e}", at(path)))?;
            let mut values = Vec::with_capacity(items.len());
            for (i, raw) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                values.push(read(raw.get(), path)?);
                path.truncate(len);
            }
            Ok(Value::Array(values))
        }
        Some(b'-' | b'0'..=b'9') => exact_number(text)
            .map(Value::Number)
            .map_err(|e| format!("{}{e}", at(path))),
        _ => serde_json::from_str(text).map_err(|e| format!("{}{e}", at(path))),
    }
}

/// An object's members in the order sent, duplicates kept (to be refused).
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// The number `token` denotes, if its canonical form denotes the same value.
pub fn exact_number(token: &str) -> Result<Number, String> {
    let number: Number =
        serde_json::from_str(token).map_err(|_| format!("`{token}` is not a JSON number"))?;
    let canonical = canonical::to_vec(&Value::Number(number.clone())).map_err(|e| e.to_string())?;
    let canonical = std::str::from_utf8(&canonical).expect("canonical numbers are ASCII");
    if Decimal::parse(token) != Decimal::parse(canonical) {
        let shown: String = token.chars().take(40).collect();
        let more = if token.len() > 40 { "…" } else { "" };
        return Err(format!(
            "number {shown}{more} cannot be stored exactly (it would become {canonical}); send it as a string"
        ));
    }
    Ok(number)
}

/// The exact value of a JSON number: sign, significant digits and a power of ten.
#[derive(Debug, PartialEq, Eq)]
enum Decimal {
    Zero,
    /// `negative`, the digits without leading or trailing zeros, and the exponent of the
    /// last digit.
    NonZero {
        negative: bool,
        digits: Vec<u8>,
        exponent: i128,
    },
}

impl Decimal {
    /// `None` if `text` is not a JSON number.
    fn parse(text: &str) -> Option<Decimal> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, bytes),
        };
        let mantissa_end = rest
            .iter()
            .position(|b| matches!(b, b'e' | b'E'))
            .unwrap_or(rest.len());
        let (mantissa, exp) = rest.split_at(mantissa_end);
        let mut exponent: i128 = match exp {
            [] => 0,
            [_, e @ ..] => {
                let e = std::str::from_utf8(e).ok()?;
                let e = e.strip_prefix('+').unwrap_or(e);
                // A longer exponent is out of every double's range anyway.
                e.parse::<i64>().ok()?.into()
            }
        };
        let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &mantissa[..0]),
        };
        if !int.iter().chain(frac).all(u8::is_ascii_digit) || int.is_empty() {
            return None;
        }
        exponent -= frac.len() as i128;
        // Significant digits: drop leading zeros of the whole, trailing zeros of the whole.
        let mut parts = [int, frac];
        for part in parts.iter_mut() {
            let lead = part.iter().take_while(|&&b| b == b'0').count();
            if lead < part.len() {
                *part = &part[lead..];
                break;
            }
            *part = &part[part.len()..];
        }
        for i in (0..2).rev() {
            let part = parts[i];
            let trail = part.iter().rev().take_while(|&&b| b == b'0').count();
            exponent += trail as i128;
            parts[i] = &part[..part.len() - trail];
            if !parts[i].is_empty() {
                break;
            }
        }
        if parts.iter().all(|p| p.is_empty()) {
            return Some(Decimal::Zero);
        }
        Some(Decimal::NonZero {
            negative,
            digits: parts.concat(),
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        let (a, b) = (Decimal::parse(a), Decimal::parse(b));
        assert!(a.is_some() && b.is_some());
        a == b
    }

    #[test]
    fn decimal_values_compare_exactly() {
        assert!(same("1", "1.0"));
        assert!(same("100", "1e2"));
        assert!(same("100", "1E+2"));
        assert!(same("0.001", "1e-3"));
        assert!(same("10.50", "1.05e1"));
        assert!(same("-0", "0"));
        assert!(same("0.000", "0e10"));
        assert!(same("120.034", "12003.4e-2"));
        assert!(!same("1", "-1"));
        assert!(!same("1e-400", "0"));
        assert!(!same("18446744073709551617", "18446744073709552000"));
        assert!(!same("1.01", "1.1"));
        assert!(!same("101", "11"));
    }

    #[test]
    fn numbers_are_kept_only_when_exact() {
        for ok in [
            "0",
            "-0",
            "1",
            "1.5",
            "0.1",
            "1e2",
            "1.0",
            "-12.25",
            "9007199254740991",
            "1e21",
            "5e-324",
            "1.7976931348623157e308",
            "123456789.125",
        ] {
            assert!(exact_number(ok).is_ok(), "{ok}: {:?}", exact_number(ok));
        }
        for bad in [
            "18446744073709551617",
            "18446744073709551616",
            "9223372036854775808",
            "9007199254740993",
            "1e-400",
            "0.10000000000000000001",
            "3.141592653589793238462643383279",
        ] {
            let err = exact_number(bad).unwrap_err();
            assert!(err.contains("send it as a string"), "{bad}: {err}");
        }
    }

    fn details_of(text: &str) -> Result<Option<Map<String, Value>>, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        details(&mut de).map_err(|e| e.to_string())
    }

    #[test]
    fn details_refuse_duplicates_at_every_depth_and_inexact_numbers() {
        let ok = details_of(r#"{"a": 1, "b": {"c": [1.5, {"d": null}]}, "e": "x"}"#).unwrap();
        assert_eq!(
            Value::Object(ok.unwrap()),
            serde_json::json!({"a": 1, "b": {"c": [1.5, {"d": null}]}, "e": "x"})
        );
        assert_eq!(details_of("null").unwrap(), None);
        let cases = [
            (r#"{"a": 1, "a": 2}"#, "`a`: member name appears twice"),
            (
                r#"{"b": {"c": 1, "c": 1}}"#,
                "`b.c`: member name appears twice",
            ),
            (
                r#"{"b": [{"x": 1, "x": 2}]}"#,
                "`b[0].x`: member name appears twice",
            ),
            (
                r#"{"n": 18446744073709551617}"#,
                "`n`: number 18446744073709551617",
            ),
            (
                r#"{"n": [0, 1e-400]}"#,
                "`n[1]`: number 1e-400 cannot be stored exactly",
            ),
            ("[1]", "must be an object"),
        ];
        for (text, expected) in cases {
            let err = details_of(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}

/// The ingest parser under arbitrary and mutated input: it never panics, and whatever it
/// accepts is stored exactly as sent.
#[cfg(test)]
mod fuzz {
    use super::Decimal;
    use crate::validate::{IngestDefaults, Limits, prepare_json};
    use crate::{SealTime, Timestamp};
    use proptest::prelude::*;
    use serde_json::Value;
    use uuid::Uuid;

    fn prepare(text: &str) -> Option<Vec<u8>> {
        let defaults = IngestDefaults {
            tenant: "t",
            occurred_at: Timestamp::from_micros(1_700_000_000_000_000).unwrap(),
        };
        let p = prepare_json(text, &defaults, &Limits::default(), Uuid::nil).ok()?;
        Some(p.presealed.seal(7, &SealTime::new(defaults.occurred_at)))
    }

    fn number_token() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "(0|[1-9][0-9]{0,24})",
            proptest::option::of("[0-9]{1,25}"),
            proptest::option::of(-400i32..400),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut t = String::new();
                if neg {
                    t.push('-');
                }
                t.push_str(&int);
                if let Some(f) = frac {
                    t.push('.');
                    t.push_str(&f);
                }
                if let Some(e) = exp {
                    t.push_str(&format!("e{e}"));
                }
                t
            })
    }

    const VALID: &str = r#"{"action":"user.login","actor":{"id":"ann","ip":"203.0.113.9","type":"user"},"occurred_at":"2026-01-02T03:04:05.000006Z","outcome":"success","details":{"n":1,"s":"x","a":[1,{"b":null}]},"step":{"name":"s","sequence":2},"duration_ms":5}"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = prepare(&text);
            let _ = prepare(&format!("{{\"action\":\"a\",\"details\":{text}}}"));
        }

        #[test]
        fn mutated_events_never_panic_and_what_is_accepted_is_what_was_sent(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
        ) {
            let mut bytes = VALID.as_bytes().to_vec();
            for (at, byte, kind) in edits {
                let i = at.index(bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(stored) = prepare(&text) {
                let sent: Value = serde_json::from_str(&text).expect("accepted text is JSON");
                let stored: Value = serde_json::from_slice(&stored).unwrap();
                for (key, value) in sent.as_object().unwrap() {
                    // Equal values: the same instant, or the same canonical form.
                    if key == "occurred_at" {
                        let at = |v: &Value| Timestamp::parse(v.as_str().unwrap()).unwrap();
                        prop_assert_eq!(at(&stored[key]), at(value));
                    } else {
                        prop_assert_eq!(
                            crate::canonical::to_vec(&stored[key]).unwrap(),
                            crate::canonical::to_vec(value).unwrap(),
                            "{} changed", key
                        );
                    }
                }
            }
        }

        #[test]
        fn a_number_is_accepted_only_if_stored_exactly(token in number_token()) {
            let text = format!(r#"{{"action":"a","details":{{"n":{token}}}}}"#);
            if let Some(stored) = prepare(&text) {
                let stored = std::str::from_utf8(&stored).unwrap();
                let at = stored.find(r#""n":"#).unwrap() + 4;
                let end = stored[at..].find(['}', ',']).unwrap() + at;
                prop_assert_eq!(Decimal::parse(&token), Decimal::parse(&stored[at..end]));
            }
        }
    }
}
