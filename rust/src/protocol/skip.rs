//! A validating skip over one JSON value: where it ends, or None.
//!
//! The one-pass batch reader ([`super::one_pass`]) must check every byte of
//! every event, yet keeps only each event's span, `type` and `timestamp`.
//! serde_json's `IgnoredAny` does that check at about 1 GB/s on rrweb JSON,
//! which is structure-dense (short keys, small integers), so most of its
//! time goes to per-token dispatch rather than to bytes. This skip is one
//! loop with the nesting kept in a bit stack, no allocation, strings
//! scanned a byte at a time for their first 16 bytes (most are short
//! keys) and then eight at a time, and numbers and literals read in place.
//!
//! It accepts exactly the grammar serde_json accepts for an ignored value
//! (RFC 8259: whitespace is space, tab, CR and LF; strings may hold any
//! character but `"`, `\` and the controls below U+0020, and escapes are
//! `\" \\ \/ \b \f \n \r \t` or `\u` with four hex digits, whose code
//! point is not checked, as serde_json does not for a skipped string). It
//! refuses more than serde_json in one case only: nesting deeper than
//! [`MAX_DEPTH`]. A refusal is never an answer by itself: the caller then
//! takes the general path, where serde_json gives (and words) the answer.
//! The `protocol_decode` fuzz target and the tests below hold the two to
//! the same verdicts.

/// Levels of nesting within one skipped value (one bit each in the stack).
pub(crate) const MAX_DEPTH: u32 = 128;

/// What each byte is to the scanner: 1 for what ends a string's plain run
/// (`"`, `\` and the control characters), 2 for whitespace.
const STRING_STOP: u8 = 1;
const WHITESPACE: u8 = 2;
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = STRING_STOP;
        b += 1;
    }
    table[b'"' as usize] = STRING_STOP;
    table[b'\\' as usize] = STRING_STOP;
    table[b' ' as usize] = WHITESPACE;
    table[b'\t' as usize] |= WHITESPACE;
    table[b'\n' as usize] |= WHITESPACE;
    table[b'\r' as usize] |= WHITESPACE;
    table
};

/// Skips whitespace from `i`: the index of the next other byte (or the end).
#[inline(always)]
pub(crate) fn whitespace(b: &[u8], i: usize) -> usize {
    // Compact JSON has none: every byte that can start a token is above ' '.
    match b.get(i) {
        Some(&c) if c > b' ' => i,
        _ => whitespace_run_end(b, i),
    }
}

fn whitespace_run_end(b: &[u8], i: usize) -> usize {
    let rest = b.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&c| CLASS[c as usize] & WHITESPACE == 0)
        .unwrap_or(rest.len())
}

/// The end of the JSON value that starts at `start` (after any whitespace),
/// or None where serde_json would refuse it (or it nests deeper than
/// [`MAX_DEPTH`]). Nothing after the value is looked at.
pub(crate) fn value_end(b: &[u8], start: usize) -> Option<usize> {
    // The open levels as a bit stack, innermost in bit 0 (set: an object,
    // clear: an array); `depth` levels are open.
    let mut objects: u128 = 0;
    let mut depth: u32 = 0;
    let mut i = start;
    loop {
        // A value starts at (or after whitespace from) i.
        i = whitespace(b, i);
        match *b.get(i)? {
            b'"' => i = string_end(b, i + 1)?,
            b'{' => {
                i = whitespace(b, i + 1);
                if *b.get(i)? == b'}' {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    objects = objects << 1 | 1;
                    depth += 1;
                    i = key_end(b, i)?;
                    continue;
                }
            }
            b'[' => {
                i = whitespace(b, i + 1);
                if *b.get(i)? == b']' {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    objects <<= 1;
                    depth += 1;
                    continue;
                }
            }
            b'-' => i = number_end(b, i + 1)?,
            b'0'..=b'9' => i = number_end(b, i)?,
            b't' => i = literal_end(b, i, b"true")?,
            b'f' => i = literal_end(b, i, b"false")?,
            b'n' => i = literal_end(b, i, b"null")?,
            _ => return None,
        }
        // After a value: the next member of the innermost open level, or
        // its end (then the same for the level around it).
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = whitespace(b, i);
            let in_object = objects & 1 == 1;
            match *b.get(i)? {
                b',' if in_object => {
                    i = key_end(b, whitespace(b, i + 1))?;
                    break;
                }
                b',' => {
                    i += 1;
                    break;
                }
                b'}' if in_object => {}
                b']' if !in_object => {}
                _ => return None,
            }
            i += 1;
            objects >>= 1;
            depth -= 1;
        }
    }
}

/// An object's key at `i` (a string) and the `:` after it: the index past
/// the colon.
#[inline(always)]
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let i = whitespace(b, string_end(b, i + 1)?);
    (*b.get(i)? == b':').then_some(i + 1)
}

/// The end of a string whose contents start at `i` (past its opening
/// quote): the index past its closing quote.
#[inline(always)]
pub(crate) fn string_end(b: &[u8], i: usize) -> Option<usize> {
    // Most strings of rrweb JSON are short keys: a byte at a time first
    // (measured: words from the start cost more on them).
    let end = b.len().min(i + 16);
    let mut j = i;
    while j < end {
        let c = b[j];
        if CLASS[c as usize] & STRING_STOP != 0 {
            if c == b'"' {
                return Some(j + 1);
            }
            return string_rest_end(b, j);
        }
        j += 1;
    }
    string_rest_end(b, j)
}

/// [`string_end`] past its first bytes: escapes, and long runs eight
/// bytes at a time.
fn string_rest_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = plain_run_end(b, i);
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = escape_end(b, i + 1)?,
            _ => return None, // a control character
        }
    }
}

/// From `i`, the index of the first `"`, `\` or control character (or the
/// end): eight bytes at a time, then byte by byte.
#[inline(always)]
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    while let Some(word) = b.get(i..i + 8) {
        let found = stops(u64::from_le_bytes(word.try_into().unwrap()));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = &b[i.min(b.len())..];
    i + rest
        .iter()
        .position(|&c| CLASS[c as usize] & STRING_STOP != 0)
        .unwrap_or(rest.len())
}

/// The high bit of each byte of `w` (eight bytes of a string, the first
/// lowest) that is below 0x20, `"` or `\`. Exact for the lowest such
/// byte, which is all that is used (a borrow may mark bytes above it);
/// bytes >= 0x80 (UTF-8 past ASCII) never match, by the `!w` term.
#[inline(always)]
fn stops(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    (w.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES))
        & !w
        & HIGHS
}

/// An escape whose letter is at `i` (past the backslash): the index past it.
#[inline]
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => {
            let hex = b.get(i + 1..i + 5)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(i + 5)
        }
        _ => None,
    }
}

/// A number whose first digit is at `i` (past any minus sign): the index
/// past it. `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        // One leading zero only: serde_json refuses `01` even where a
        // value may end (at the top level).
        b'0' if matches!(b.get(i + 1), Some(b'0'..=b'9')) => return None,
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let after = digits_end(b, i + 1);
        if after == i + 1 {
            return None;
        }
        i = after;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let after = digits_end(b, i);
        if after == i {
            return None;
        }
        i = after;
    }
    Some(i)
}

#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        i += 1;
    }
    i
}

#[inline]
fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    /// serde_json's verdict on the value at the start of `text`: where it
    /// ends, or None.
    fn serde_end(text: &str) -> Option<usize> {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
        stream.next()?.ok()?;
        Some(stream.byte_offset())
    }

    fn agree(text: &str) {
        let ours = value_end(text.as_bytes(), 0);
        assert_eq!(ours, serde_end(text), "{text:?}");
    }

    #[test]
    fn agrees_with_serde_json_on_valid_values() {
        for text in [
            "0",
            "-0",
            "1",
            "-12",
            "1.5",
            "1e5",
            "1E+5",
            "1e-05",
            "0.0e0",
            "123456789012345678901234",
            "true",
            "false",
            "null",
            r#""""#,
            r#""abc""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e9\uD800\uffff""#,
            "\"é ✓ 𝄞 long enough to take words\"",
            "[]",
            "{}",
            "[ ]",
            "{ }",
            " [1, 2 ,3 ] ",
            r#"{"a":1,"b":[true,{"c":null}],"d":"e"}"#,
            "{\n\t\"a\" :\r\n [ ] }",
            r#"[[[[[[[[]]]]]]]]"#,
            "1 trailing",
            "{}x",
            "[1]]",
        ] {
            agree(text);
        }
    }

    #[test]
    fn agrees_with_serde_json_on_invalid_values() {
        for text in [
            "",
            " ",
            "-",
            "+1",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "--1",
            "tru",
            "nul",
            "True",
            r#"""#,
            r#""abc"#,
            "\"a\u{1}b\"",
            "\"tab\tinside\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "[",
            "[1",
            "[1,",
            "[1,]",
            "{",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{a:1}"#,
            "{1:2}",
            "[}",
            "{]",
            r#"{"a" 1}"#,
            "[1 2]",
            "]",
            "}",
            ",",
            ":",
            "x",
            "\u{0}",
        ] {
            agree(text);
        }
    }

    #[test]
    fn stops_at_the_depth_limit() {
        // An empty innermost level holds nothing, so takes no bit.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(value_end(deep(129).as_bytes(), 0), Some(258));
        assert_eq!(value_end(deep(130).as_bytes(), 0), None);
        assert!(serde_end(&deep(130)).is_some());
    }

    #[test]
    fn agrees_with_serde_json_on_mutated_values() {
        // Every one-byte change (from a set of JSON's meaningful bytes) and
        // every truncation of a few values rich in structure.
        let seeds = [
            r#"{"type":3,"data":{"source":1,"positions":[{"x":744,"y":-4.5e2,"id":245}]},"timestamp":1714564800051}"#,
            r#"[{"a":"b\"\\\u00e9c","t":true,"f":false,"n":null},[],{},"x y z 0123456789",-0.0E-0]"#,
        ];
        let bytes = b"{}[]:,\"\\ \t\n0123456789-+.eEtrufalsn\x01x\xc3";
        for seed in seeds {
            for cut in 0..=seed.len() {
                if let Some(prefix) = seed.get(..cut) {
                    agree(prefix);
                }
            }
            for at in 0..seed.len() {
                for &byte in bytes {
                    let mut mutated = seed.as_bytes().to_vec();
                    mutated[at] = byte;
                    if let Ok(text) = std::str::from_utf8(&mutated) {
                        agree(text);
                    }
                    mutated.insert(at, byte);
                    if let Ok(text) = std::str::from_utf8(&mutated) {
                        agree(text);
                    }
                }
            }
        }
    }
}
