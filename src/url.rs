//! URL pieces that more than one module reads the same way: `%XX` escapes and the
//! spellings a lenient origin would take for the token parameter's name. A leaf: the path
//! normaliser and the token extractor (edge), the manifest rewriter and the `file://`
//! origin all import it, and it imports nothing of the crate, so none of them has to
//! depend on another to agree on how a URL is read.

use std::borrow::Cow;

/// The value of one hex digit, either case.
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Hex text (either case, an even number of digits) as bytes; None for anything else
/// (`u8::from_str_radix` would take a sign: `+f` is not hex).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

/// `%XX` escapes decoded, once (and `+` as a space when `plus_is_space`, as a form's
/// query reads); None for a `%` not followed by two hex digits, which is refused
/// rather than guessed at.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                out.push(escape_at(input, i)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The byte a `%XX` escape at `bytes[i]` stands for, if it is a complete escape.
pub fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
    let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
    Some(hi << 4 | lo)
}

/// True when an origin could read the parameter `piece` (`name=value`, from a query split
/// on `&` *or* `;`, or a path segment's `;` parameters) as the token carrier `name`: its
/// name percent-decoded (`+` as space), trimmed of spaces and a `[]` suffix, equals `name`
/// ignoring ASCII case. The edge refuses such a request rather than forward something a
/// lenient origin would take for the token (threat model A13, A16).
pub fn is_token_name_lookalike(piece: &str, name: &str) -> bool {
    let raw = piece.split('=').next().unwrap_or("");
    // A name can grow at most threefold by encoding, plus the trimmed extras.
    if name.is_empty() || raw.len() > name.len() * 3 + 8 {
        return false;
    }
    let decoded: Cow<'_, str> = if raw.bytes().any(|b| b == b'%' || b == b'+') {
        let mut out = Vec::with_capacity(raw.len());
        let bytes = raw.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match (escape_at(bytes, i), bytes[i]) {
                (Some(v), _) => {
                    out.push(v);
                    i += 3;
                }
                (None, b'+') => {
                    out.push(b' ');
                    i += 1;
                }
                (None, b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Cow::Owned(String::from_utf8_lossy(&out).into_owned())
    } else {
        Cow::Borrowed(raw)
    };
    let d = decoded.trim_matches(' ');
    let d = d.strip_suffix("[]").unwrap_or(d).trim_matches(' ');
    d.eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_digits_only_in_pairs_and_escapes_are_complete() {
        assert_eq!(super::decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        for bad in ["+f", "0", "0g", "-1"] {
            assert_eq!(super::decode_hex(bad), None, "{bad}");
        }
        assert_eq!(
            super::percent_decode(b"a%20b+c", true),
            Some(b"a b c".to_vec())
        );
        assert_eq!(
            super::percent_decode(b"a%20b+c", false),
            Some(b"a b+c".to_vec())
        );
        assert_eq!(super::percent_decode(b"%2", false), None);
        assert_eq!(super::percent_decode(b"%zz", false), None);
    }

    use super::is_token_name_lookalike as look;

    #[test]
    fn a16_spellings_an_origin_could_read_as_the_token_are_lookalikes() {
        for piece in [
            "token=x",
            "Token=x",
            "TOKEN=x",
            "%74oken=x",
            "tok%65n=x",
            "%54oken=x",
            "token+=x",
            "token%20=x",
            "token[]=x",
            " token =x",
            "token",
        ] {
            assert!(look(piece, "token"), "{piece:?}");
        }
        for piece in [
            "tokens=x",
            "x=token",
            "t=1",
            "_HLS_msn=3",
            "",
            "=token",
            "tok=x",
        ] {
            assert!(!look(piece, "token"), "{piece:?}");
        }
    }
}
