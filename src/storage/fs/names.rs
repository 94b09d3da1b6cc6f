//! Key components as file names: the percent-encoding of a component and
//! the check that a name on disk is the canonical encoding of one.

fn is_plain(byte: u8, first: bool) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || (byte == b'.' && !first)
}

pub(super) fn encode_component(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for (i, byte) in component.bytes().enumerate() {
        if is_plain(byte, i == 0) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The key component that `name` is the encoding of, if `put` could have
/// written it: decoding and encoding again give `name` back (so `%41` for
/// `A`, lower-case hex and raw non-ASCII bytes are not ours, and no two
/// names list as one key), and the component is a valid one (not `.`,
/// `..`, nor holding `/` or NUL). A leading `.` (the lock, temporary
/// files) is never an encoding.
pub(super) fn canonical_component(name: &str) -> Option<String> {
    let decoded = decode_component(name)?;
    let valid = !matches!(decoded.as_str(), "" | "." | "..")
        && !decoded.contains(['/', '\0'])
        && encode_component(&decoded) == name;
    valid.then_some(decoded)
}

fn decode_component(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn component_encoding_round_trips_awkward_names() {
        for name in ["plain", ".hidden", "a b", "ü%/x", "..x", "-", "100%"] {
            let encoded = encode_component(name);
            assert!(!encoded.starts_with('.'), "{encoded}");
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_component(&encoded).as_deref(), Some(name));
            // A '/' encodes, but a component never holds one.
            let valid = (!name.contains('/')).then_some(name);
            assert_eq!(canonical_component(&encoded).as_deref(), valid);
        }
    }

    #[test]
    pub(super) fn only_canonical_encodings_of_valid_components_decode() {
        for name in [
            "%41",
            "a%2fb",
            "%2e",
            "%2E",
            "%2E%2E",
            "x%2Fy",
            "%00",
            "%zz",
            "%4",
            ".lock",
            ".tmp-1",
            "caf\u{e9}",
            "",
        ] {
            assert_eq!(canonical_component(name), None, "{name}");
        }
        assert_eq!(canonical_component("a%2Fb"), None);
        assert_eq!(canonical_component("%2Ehidden").as_deref(), Some(".hidden"));
        assert_eq!(canonical_component("a.b").as_deref(), Some("a.b"));
    }
}
