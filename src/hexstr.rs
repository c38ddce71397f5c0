//! The one hex helper every role uses: lowercase hex of bytes, random hex
//! names, and fixed-size keys read back from hex text (hub key files). All
//! decoding goes through the `hex` crate, which works on bytes and never
//! slices a string inside a UTF-8 character; errors say which character at
//! which position was wrong, or how many digits there were, never the text
//! itself (a key file's content is a secret).

use thiserror::Error;

/// Why hex text does not hold the expected bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// Not exactly `2 * N` digits (after trimming surrounding whitespace).
    #[error("expected {want} hex digits (a {bytes}-byte key), found {got} characters")]
    Length { want: usize, bytes: usize, got: usize },
    /// A character that is not `0-9`, `a-f` or `A-F`; `position` counts
    /// characters from 1.
    #[error("character {position} is not a hex digit (only 0-9 and a-f are allowed)")]
    NotHex { position: usize },
}

/// Lowercase hex of `bytes`, two digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// `n` random bytes from the OS as lowercase hex (`2 * n` digits). If the OS
/// has no randomness to give, the bytes stay zero: callers use this for
/// names that must differ, not for secrets.
pub fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = getrandom::getrandom(&mut b);
    encode(&b)
}

/// Decode exactly `N` bytes from `text`, ignoring whitespace around it.
/// Upper- and lowercase digits are accepted.
pub fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let t = text.trim();
    let mut out = [0u8; N];
    // Check characters first, so a non-hex character is named even when the
    // length is also wrong (the length is counted in characters, not bytes).
    if let Some((i, _)) = t.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(HexError::NotHex { position: i + 1 });
    }
    if t.len() != 2 * N {
        return Err(HexError::Length { want: 2 * N, bytes: N, got: t.chars().count() });
    }
    hex::decode_to_slice(t, &mut out).map_err(|_| HexError::Length { want: 2 * N, bytes: N, got: t.len() })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_uppercase() {
        let key: [u8; 4] = [0, 0x9a, 0xbc, 0xff];
        assert_eq!(encode(&key), "009abcff");
        assert_eq!(decode_fixed::<4>(" 009ABCff\n"), Ok(key));
        assert_eq!(random(16).len(), 32);
        assert_ne!(random(16), random(16));
    }

    #[test]
    fn multibyte_characters_are_errors_not_panics() {
        // The review's input: `0é` and 61 zeros is 64 bytes but 63 characters.
        let text = format!("0é{}", "0".repeat(61));
        assert_eq!(text.len(), 64);
        assert_eq!(decode_fixed::<32>(&text), Err(HexError::NotHex { position: 2 }));
        for bad in ["é", "éé", "0é", "€0", "0\u{0}", "+0", "-0", "0x00"] {
            assert!(decode_fixed::<1>(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lengths_are_counted_and_named() {
        assert_eq!(decode_fixed::<2>("abc"), Err(HexError::Length { want: 4, bytes: 2, got: 3 }));
        assert_eq!(decode_fixed::<2>(""), Err(HexError::Length { want: 4, bytes: 2, got: 0 }));
        assert_eq!(decode_fixed::<2>("abcdef"), Err(HexError::Length { want: 4, bytes: 2, got: 6 }));
        let e = decode_fixed::<32>("zz").unwrap_err().to_string();
        assert_eq!(e, "character 1 is not a hex digit (only 0-9 and a-f are allowed)");
    }
}
