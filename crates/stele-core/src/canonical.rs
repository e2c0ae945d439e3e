//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of an event that is
//! stored and hashed, so that any third party can recompute a leaf hash.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Below this magnitude (2^53 - 1) every integer is an exact IEEE 754 double. Beyond it an
/// integer is accepted only if its nearest double prints as itself.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {0} is outside the exactly representable range ±(2^53-1); send it as a string")]
    UnsafeInteger(String),
}

/// Encodes `value` in canonical form.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

/// Appends the canonical form of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

/// Appends the canonical form of an object.
pub fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| compare_keys(a.0, b.0));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// JCS orders object members by the UTF-16 code units of their names.
pub fn compare_keys(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Appends the canonical form of an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, u: u64) -> Result<(), CanonicalError> {
    if u <= MAX_SAFE_INTEGER {
        write_decimal(out, u);
        Ok(())
    } else {
        write_large_integer(out, u.to_string(), u as f64)
    }
}

/// Appends the decimal digits of `u`.
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut u: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), CanonicalError> {
    if let Some(u) = n.as_u64() {
        write_u64(out, u)?;
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= MAX_SAFE_INTEGER {
            out.extend_from_slice(i.to_string().as_bytes());
        } else {
            write_large_integer(out, i.to_string(), i as f64)?;
        }
    } else {
        // serde_json never yields a non-finite float from JSON text.
        let f = n.as_f64().unwrap_or(0.0);
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format(f).as_bytes());
    }
    Ok(())
}

/// JCS treats numbers as IEEE 754 doubles. A large integer is kept only when its double's
/// canonical form is the integer itself, so stored text never differs from what was sent.
fn write_large_integer(
    out: &mut Vec<u8>,
    text: String,
    as_double: f64,
) -> Result<(), CanonicalError> {
    let mut buf = ryu_js::Buffer::new();
    let canonical = buf.format(as_double);
    if canonical != text {
        return Err(CanonicalError::UnsafeInteger(text));
    }
    out.extend_from_slice(canonical.as_bytes());
    Ok(())
}

/// Writes a JSON string the way ECMAScript's `JSON.stringify` does: only `"`, `\` and
/// control characters are escaped; everything else is emitted as UTF-8.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        // The common case: nothing to escape.
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(to_vec(&value).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_numbers() {
        // Number serialization samples from RFC 8785 appendix B (IEEE 754 → JSON text).
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1e30", "1e+30"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("9007199254740991", "9007199254740991"),
            ("-9007199254740991", "-9007199254740991"),
            ("295147905179352830000", "295147905179352830000"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("333333333.3333333", "333333333.3333333"),
            ("1e23", "1e+23"),
            ("0.1", "0.1"),
            ("-1.5", "-1.5"),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input), expected, "input {input}");
        }
    }

    #[test]
    fn rfc8785_section_3_2_example() {
        // The example of RFC 8785 section 3.2.2 and its canonical output (3.2.3).
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let expected = concat!(
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"#,
            r#""string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        assert_eq!(canon(input), expected);
    }

    #[test]
    fn rfc8785_key_order_by_utf16() {
        // RFC 8785 section 3.2.3 sorting example: UTF-16 code unit order, where the
        // surrogate pair of U+1F600 sorts before U+FB33 although its UTF-8 form does not.
        let input = r#"{
            "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        let out = String::from_utf8(to_vec(&value).unwrap()).unwrap();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&out)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // serde_json's map is itself sorted, so read the order back from the text instead.
        let order: Vec<usize> = keys
            .iter()
            .map(|k| {
                out.find(&format!("\"{}\":", k.replace('\r', "\\r")))
                    .unwrap()
            })
            .collect();
        let mut by_position: Vec<(usize, &String)> = order.into_iter().zip(keys.iter()).collect();
        by_position.sort();
        let sorted: Vec<&str> = by_position.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            sorted,
            [
                "\r",
                "1",
                "\u{80}",
                "\u{f6}",
                "\u{20ac}",
                "\u{1f600}",
                "\u{fb33}"
            ]
        );
    }

    #[test]
    fn string_escapes() {
        let cases = [
            (json!("plain"), r#""plain""#),
            (
                json!("tab\tnl\ncr\rbs\u{8}ff\u{c}"),
                r#""tab\tnl\ncr\rbs\bff\f""#,
            ),
            (json!("\u{1}\u{1f}"), r#""\u0001\u001f""#),
            (json!("quote\" back\\ slash/"), r#""quote\" back\\ slash/""#),
            (json!("\u{7f}\u{2028}é😀"), "\"\u{7f}\u{2028}é😀\""),
        ];
        for (value, expected) in cases {
            assert_eq!(
                String::from_utf8(to_vec(&value).unwrap()).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn nested_objects_sorted_at_every_level() {
        assert_eq!(
            canon(r#"{"b":{"z":1,"a":[{"y":true,"x":null}]},"a":"s"}"#),
            r#"{"a":"s","b":{"a":[{"x":null,"y":true}],"z":1}}"#
        );
    }

    #[test]
    fn unsafe_integers_are_refused() {
        // Integers whose nearest double prints as themselves are kept as sent.
        for input in [
            "9007199254740992",
            "-9007199254740992",
            "10000000000000000000",
            "-4077411287423973400",
        ] {
            assert_eq!(canon(input), input);
        }
        for input in [
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551615",
            "4077411287423973401",
        ] {
            let value: Value = serde_json::from_str(input).unwrap();
            assert!(
                matches!(to_vec(&value), Err(CanonicalError::UnsafeInteger(_))),
                "{input}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn canonical_form_is_a_fixed_point(value in arb_json()) {
            let once = to_vec(&value).unwrap();
            let reparsed: Value = serde_json::from_slice(&once).unwrap();
            let twice = to_vec(&reparsed).unwrap();
            proptest::prop_assert_eq!(once, twice);
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64).prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
