//! What `serde_json` accepts but the API refuses, found in a body before it is decoded:
//! U+0000 (PostgreSQL cannot store it), numbers a double would round, and repeated member
//! names; each answered with the JSON Pointer of the place.

use crate::error::{ApiError, FieldError, pointer_token};

/// Whether JSON text contains the escape `\u0000` (a raw NUL byte is not valid JSON).
/// PostgreSQL's `text` and `jsonb` cannot hold U+0000, so such a value is refused up front.
pub(super) fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1..i + 6) == Some(b"u0000") {
                return true;
            }
            // Skip the escaped character, so `\\u0000` (a backslash, then text) is not a NUL.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// JSON Pointer of the first string (or key) in `value` containing U+0000.
pub(super) fn nul_pointer(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(String::new),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_pointer(item).map(|rest| format!("/{i}{rest}"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let escaped = pointer_token(key);
            if key.contains('\0') {
                Some(format!("/{escaped}"))
            } else {
                nul_pointer(item).map(|rest| format!("/{escaped}{rest}"))
            }
        }),
        _ => None,
    }
}

/// A JSON number's value in one canonical decimal form: its significant digits (no leading or
/// trailing zeros) and the power of ten of the last one; zero is `("", 0)` whatever its sign
/// or exponent. `None` for text that is not a JSON number (RFC 8259 §6).
pub(super) fn canonical_number(token: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let shift = i64::try_from(significant.len() - trimmed.len()).ok()?;
    Some((negative, trimmed.to_owned(), exponent.checked_add(shift)?))
}

/// The JSON Pointer (RFC 6901) of the first number in JSON text whose value the decoder
/// cannot hold exactly (an integer beyond 64 bits, more digits than a double keeps, …), if
/// any. serde_json rounds such numbers to the nearest double without a word, so the stored
/// value would differ from the one sent (and, for an offer, from the one approved). Numbers
/// are read from the text itself (outside strings) and compared, as exact decimals, with what
/// the decoder made of them; the pointer is that of the first decoded number with the rounded
/// value. `None` also for text that is not JSON (the decoder reports that).
pub fn inexact_number(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut rounded = None;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' {
            // Skip the string, escapes included.
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
        } else if c == '-' || c.is_ascii_digit() {
            let mut end = start + c.len_utf8();
            while let Some(&(at, c)) = chars.peek() {
                if c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-') {
                    end = at + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[start..end];
            let decoded: serde_json::Number = serde_json::from_str(token).ok()?;
            if decoded.is_i64() || decoded.is_u64() {
                continue;
            }
            if canonical_number(token) != canonical_number(&decoded.to_string()) {
                rounded = Some(decoded);
                break;
            }
        }
    }
    let rounded = rounded?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    number_pointer(&value, &rounded)
}

/// The pointer of the first number equal to `number` in `value`.
fn number_pointer(value: &serde_json::Value, number: &serde_json::Number) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => (n == number).then(String::new),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| number_pointer(item, number).map(|rest| format!("/{i}{rest}"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            number_pointer(item, number).map(|rest| format!("/{}{rest}", pointer_token(key)))
        }),
        _ => None,
    }
}

/// Walks JSON text and records the JSON Pointer (RFC 6901) of the first object member whose
/// name repeats an earlier member of the same object. serde_json keeps the last of duplicate
/// keys silently (RFC 8259 §4 leaves it open), so `{"status": "a", "status": "b"}` could mean
/// one thing to a proxy or an audit log and another to us.
struct DuplicateKeys<'p> {
    path: &'p mut Vec<String>,
    found: &'p mut Option<String>,
}

impl DuplicateKeys<'_> {
    fn record(&mut self, key: &str) {
        if self.found.is_none() {
            let pointer: String = self
                .path
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(key))
                .map(|segment| format!("/{}", pointer_token(segment)))
                .collect();
            *self.found = Some(pointer);
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for DuplicateKeys<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DuplicateKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            self.path.push(index.to_string());
            let item = seq.next_element_seed(DuplicateKeys {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            if item?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                self.record(&key);
            }
            self.path.push(key);
            let value = map.next_value_seed(DuplicateKeys {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            value?;
        }
        Ok(())
    }
}

/// The JSON Pointer of the first repeated member name in JSON text, at any depth, if any
/// (`None` also for text that is not JSON: the decoder reports that).
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    use serde::de::DeserializeSeed;
    let mut path = Vec::new();
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = DuplicateKeys {
        path: &mut path,
        found: &mut found,
    }
    .deserialize(&mut deserializer);
    walked.ok().and(found)
}

/// 422 for a body whose object at `pointer`'s parent repeats the member `pointer` names.
pub fn duplicate_key_error(pointer: String) -> ApiError {
    ApiError::Unprocessable {
        detail: format!("{pointer}: duplicate member name in a JSON object"),
        errors: vec![FieldError {
            pointer,
            detail: "duplicate member name in a JSON object".into(),
        }],
    }
}
