//! Incremental UTF-8 validation of text messages (RFC 6455 §8.1).
//!
//! A text message may be split into fragments, and a fragment into socket
//! reads, at any byte, including inside a multi-byte character. The
//! validator takes the payload piece by piece and **fails fast**: it reports
//! an error as soon as the bytes seen so far cannot begin any valid UTF-8
//! string, so a peer streaming garbage is cut off at the first bad byte
//! rather than after `max_message_bytes`. An incomplete character at the end
//! of a piece is kept (at most 3 bytes) and completed by the next piece.
//!
//! The work is done by `std::str::from_utf8`, whose ASCII fast path runs at
//! memory speed; `Utf8Error::error_len()` tells "invalid" (`Some`) from
//! "cut short" (`None`). The standard validator rejects a byte as soon as it
//! cannot continue the sequence (overlongs, surrogates and code points over
//! U+10FFFF are caught at their second byte), which is what makes this
//! fail-fast.

use std::str;

/// The bytes seen so far cannot be the start of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates one text message fed in arbitrary pieces.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a character cut off at the end of the previous piece.
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any pending partial character, ready for a new message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// True when no character is cut in the middle: the message may end here.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Validates the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            data = self.complete_partial(data)?;
            if self.partial_len > 0 {
                // `data` was used up and the character is still incomplete.
                return Ok(());
            }
        }
        match str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let tail = &data[e.valid_up_to()..];
                    // `from_utf8` only reports "cut short" for a proper
                    // prefix of a character, so `tail` holds 1..=3 bytes.
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.partial_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Reports an error if the message ends inside a character.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.is_complete();
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Adds bytes from `data` to the pending character until it is whole or
    /// `data` runs out; returns the rest of `data`.
    fn complete_partial<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.partial_len);
        let want = sequence_len(self.partial[0]) - have;
        let take = want.min(data.len());
        self.partial[have..have + take].copy_from_slice(&data[..take]);
        let len = have + take;
        match str::from_utf8(&self.partial[..len]) {
            Ok(_) => {
                self.partial_len = 0;
                Ok(&data[take..])
            }
            Err(e) if e.error_len().is_none() => {
                // Still a valid prefix; `take < want`, so `data` is used up.
                self.partial_len = len as u8;
                Ok(&data[take..])
            }
            Err(_) => Err(InvalidUtf8),
        }
    }
}

/// Length of the sequence a valid lead byte starts. Only called on the first
/// byte of a kept partial character, which `from_utf8` already accepted as a
/// lead byte (0xC2..=0xF4).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Whole-buffer check, for close reasons and other short payloads.
pub fn is_valid(data: &[u8]) -> bool {
    str::from_utf8(data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` split at every position into two pieces, and one byte at
    /// a time; returns the outcome (same for all splits, checked here).
    fn check_all_splits(data: &[u8]) -> Result<(), InvalidUtf8> {
        let whole = {
            let mut v = Utf8Validator::new();
            v.feed(data).and_then(|_| v.finish())
        };
        for cut in 0..=data.len() {
            let mut v = Utf8Validator::new();
            let r = v
                .feed(&data[..cut])
                .and_then(|_| v.feed(&data[cut..]))
                .and_then(|_| v.finish());
            assert_eq!(r, whole, "cut at {cut} of {data:x?}");
        }
        let mut v = Utf8Validator::new();
        let r = data
            .iter()
            .try_for_each(|b| v.feed(std::slice::from_ref(b)))
            .and_then(|_| v.finish());
        assert_eq!(r, whole, "bytewise {data:x?}");
        whole
    }

    #[test]
    fn valid_text_in_any_split() {
        for s in [
            "",
            "plain ascii",
            "κόσμε",
            "€ and 𝄞 and 中文",
            "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
        ] {
            assert_eq!(check_all_splits(s.as_bytes()), Ok(()), "{s}");
        }
    }

    #[test]
    fn invalid_text_in_any_split() {
        let cases: &[&[u8]] = &[
            b"\xff",
            b"abc\xc0\xafdef",   // overlong '/'
            b"\xed\xa0\x80",     // surrogate
            b"\xf4\x90\x80\x80", // > U+10FFFF
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            b"\xe2\x82",     // truncated at end
            b"\x80",         // lone continuation
            b"\xf0\x9f\x98", // truncated emoji
        ];
        for c in cases {
            assert_eq!(check_all_splits(c), Err(InvalidUtf8), "{c:x?}");
        }
    }

    #[test]
    fn fails_at_the_first_impossible_byte() {
        // 0xF4 0x90 cannot start any valid sequence: rejected before the
        // rest of the character arrives.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok \xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));

        // Surrogate lead, split across pieces.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xed"), Ok(()));
        assert_eq!(v.feed(b"\xa0"), Err(InvalidUtf8));

        // Inside one piece, valid prefix then garbage.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"hello \xc3\x28 rest"), Err(InvalidUtf8));
    }

    #[test]
    fn incomplete_tail_is_kept_until_completed() {
        let euro = "€".as_bytes(); // e2 82 ac
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&euro[..1]), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(&euro[1..2]), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(&euro[2..]), Ok(()));
        assert!(v.is_complete());
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn empty_pieces_change_nothing() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2"), Ok(()));
        assert_eq!(v.feed(b""), Ok(()));
        assert_eq!(v.feed(b"\x82\xac"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn reset_forgets_partial_character() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2\x82"), Ok(()));
        v.reset();
        assert_eq!(v.feed(b"abc"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }
}
