//! JSON-aware inputs for the `protocol_decode` property: client messages
//! built from the protocol's own vocabulary, and edits made on the spans of
//! a message's values and members (so key order, spacing and escapes of
//! the rest stay as they were): types swapped, fields dropped, duplicated
//! or renamed, values nested deeply, numbers out of range, strings with
//! bad escapes or bytes that are not UTF-8, event arrays multiplied.

use super::driver::Rng;

const KEYS: &[&str] = &[
    "type",
    "data",
    "events",
    "sessionId",
    "seq",
    "timestamp",
    "fromIndex",
    "limit",
    "userId",
    "url",
    "userAgent",
    "viewport",
    "width",
    "height",
    "devicePixelRatio",
    "startTime",
    "referrer",
    "timeZone",
    "session_id",
    "Type",
    "x",
    "",
    // Escaped forms of real keys: serde reads them as the key.
    "typ\\u0065",
    "\\u0064ata",
    "ev\\u0065nts",
];

const TYPES: &[&str] = &[
    "events_batch",
    "events_batch",
    "events_batch",
    "session_start",
    "session_end",
    "viewer_join_session",
    "viewer_leave_session",
    "get_session_events",
    "snapshot_missing",
    "session_pause",
    "events_batc\\u0068",
    "",
];

/// Numbers serde_json reads as an `i64`, a `u64` or an `f64`.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "6",
    "0.5",
    "-0",
    "-1",
    "1e3",
    "1E-7",
    "1700000000000",
    "1700000000000.25",
    "1.7976931348623157e308",
    "5e-324",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    // Past the fast path of float parsing: long mantissas, halfway cases,
    // the subnormal edge.
    "0.1000000000000000055511151231257827021181583404541015625",
    "1.00000000000000011102230246251565404236316680908203125",
    "2.2250738585072011e-308",
    "59999999998.9999999999e-099",
    "14401111111111111111111511111111111",
];

/// Numbers out of every range, and what is not a JSON number.
const BAD_NUMBERS: &[&str] = &[
    "1e309",
    "-1e400",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890123456789012345678901234567890",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "NaN",
    "Infinity",
    "0x10",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\"s1\"",
    "\"session-42\"",
    "\"événement\"",
    "\"\\u0000\"",
    "\"\\ud83d\\ude00\"",
    "\"\\\"\"",
    "\"\\/\\b\\f\\n\\r\\t\"",
];

/// Strings serde_json refuses: lone surrogates, bad escapes, a raw
/// control character, no closing quote.
const BAD_STRINGS: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\x41\"",
    "\"\\u12\"",
    "\"a\tb\"",
    "\"unterminated",
];

fn number(rng: &mut Rng) -> Vec<u8> {
    let list = if rng.one_in(8) { BAD_NUMBERS } else { NUMBERS };
    rng.pick(list).as_bytes().to_vec()
}

/// A small integer, the usual index or count.
fn small(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(8) {
        number(rng)
    } else {
        rng.below(20).to_string().into_bytes()
    }
}

fn string(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(10) {
        return rng.pick(BAD_STRINGS).as_bytes().to_vec();
    }
    if rng.one_in(2) {
        return rng.pick(STRINGS).as_bytes().to_vec();
    }
    let mut s = b"\"".to_vec();
    for _ in 0..rng.size(40) {
        if rng.one_in(40) {
            s.extend_from_slice(rng.pick(INSIDE_STRINGS));
        } else {
            s.push(b'a' + rng.below(26) as u8);
        }
    }
    s.push(b'"');
    s
}

/// Raw bytes to put inside a string: escapes good and bad, control
/// characters, and byte sequences that are not UTF-8.
const INSIDE_STRINGS: &[&[u8]] = &[
    b"\\u0000",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\\ud83d\\ude00",
    b"\\uDEAD",
    b"\\u00e9",
    b"\\x",
    b"\\u12",
    b"\\",
    b"\\\"",
    b"\x01",
    b"\x7f",
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    "\u{2028}".as_bytes(),
];

const WHITESPACE: &[&[u8]] = &[b" ", b"\n", b"\t", b"\r", b"\x0b", b"\x0c", b"\xc2\xa0"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    String,
    Scalar,
}

/// A member of an object: `"key": value`.
#[derive(Clone, Copy, Debug)]
struct Member {
    key: (usize, usize),
    end: usize,
    /// Start of the object holding it.
    parent: usize,
}

/// The spans found in a JSON text, as far as it parses.
#[derive(Default, Debug)]
struct Spans {
    values: Vec<(usize, usize, Kind)>,
    members: Vec<Member>,
    /// Array elements with the start of their array.
    elements: Vec<(usize, usize, usize)>,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    spans: Spans,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let found = self.s.get(self.pos) == Some(&b);
        self.pos += usize::from(found);
        found
    }

    fn value(&mut self) -> Option<()> {
        self.ws();
        let start = self.pos;
        let kind = match *self.s.get(self.pos)? {
            b'{' if self.depth < 64 => {
                self.depth += 1;
                self.object(start)?;
                self.depth -= 1;
                Kind::Object
            }
            b'[' if self.depth < 64 => {
                self.depth += 1;
                self.array(start)?;
                self.depth -= 1;
                Kind::Array
            }
            b'"' => {
                self.string()?;
                Kind::String
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let n = self.s[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
                    .count();
                self.pos += n;
                Kind::Scalar
            }
            _ => return None,
        };
        self.spans.values.push((start, self.pos, kind));
        Some(())
    }

    fn string(&mut self) -> Option<()> {
        self.pos += 1;
        loop {
            match *self.s.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
    }

    fn object(&mut self, parent: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.ws();
            let key_start = self.pos;
            if self.s.get(self.pos) != Some(&b'"') {
                return None;
            }
            self.string()?;
            let key = (key_start, self.pos);
            if !self.eat(b':') {
                return None;
            }
            self.value()?;
            self.spans.members.push(Member {
                key,
                end: self.pos,
                parent,
            });
            if !self.eat(b',') {
                return self.eat(b'}').then_some(());
            }
        }
    }

    fn array(&mut self, parent: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.ws();
            let start = self.pos;
            self.value()?;
            self.spans.elements.push((start, self.pos, parent));
            if !self.eat(b',') {
                return self.eat(b']').then_some(());
            }
        }
    }
}

fn spans(text: &[u8]) -> Spans {
    let mut p = Parser {
        s: text,
        pos: 0,
        depth: 0,
        spans: Spans::default(),
    };
    let _ = p.value();
    p.spans
}

fn quoted(key: &str) -> Vec<u8> {
    format!("\"{key}\"").into_bytes()
}

/// A random JSON value (valid more often than not), at most `depth` deep.
pub fn value(rng: &mut Rng, depth: usize) -> Vec<u8> {
    match rng.below(if depth == 0 { 4 } else { 7 }) {
        0 => number(rng),
        1 => string(rng),
        2 => rng.pick(&["true", "false", "null"]).as_bytes().to_vec(),
        3 => small(rng),
        4 => {
            let items: Vec<Vec<u8>> = (0..rng.size(5)).map(|_| value(rng, depth - 1)).collect();
            [b"[".to_vec(), items.join(&b","[..]), b"]".to_vec()].concat()
        }
        5 if rng.one_in(6) => nested(rng, b"null"),
        _ => {
            let members: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.size(5))
                .map(|_| (quoted(rng.pick(KEYS)), value(rng, depth - 1)))
                .collect();
            object(rng, members)
        }
    }
}

/// `inner` wrapped in arrays or objects, up to thousands deep (serde_json
/// stops at 128; a recursive reader without a limit would overflow).
fn nested(rng: &mut Rng, inner: &[u8]) -> Vec<u8> {
    let depth = if rng.one_in(8) {
        rng.range(120, 5000)
    } else {
        rng.range(1, 140)
    };
    let (open, close): (&[u8], &[u8]) = if rng.one_in(2) {
        (b"[", b"]")
    } else {
        (b"{\"a\":", b"}")
    };
    [open.repeat(depth), inner.to_vec(), close.repeat(depth)].concat()
}

/// An object of these members, with random spacing.
fn object(rng: &mut Rng, members: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let space = |rng: &mut Rng| -> &'static [u8] {
        if rng.one_in(4) {
            rng.pick(&[&b" "[..], b"\n", b"\t ", b"\r\n"])
        } else {
            b""
        }
    };
    let mut out = b"{".to_vec();
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(space(rng));
        out.extend(k);
        out.extend_from_slice(space(rng));
        out.push(b':');
        out.extend_from_slice(space(rng));
        out.extend(v);
    }
    out.extend_from_slice(space(rng));
    out.push(b'}');
    out
}

/// Mostly the right value for a field, sometimes any value.
fn field(rng: &mut Rng, right: impl FnOnce(&mut Rng) -> Vec<u8>) -> Vec<u8> {
    if rng.one_in(20) {
        value(rng, 2)
    } else {
        right(rng)
    }
}

fn session_id(rng: &mut Rng) -> Vec<u8> {
    match rng.below(30) {
        0 => b"\"\"".to_vec(),
        1 => quoted(&"x".repeat(rng.range(120, 300))),
        2 => quoted(&"é".repeat(rng.range(60, 200))),
        3 => string(rng),
        _ => quoted(&format!("s{}", rng.below(1000))),
    }
}

fn event(rng: &mut Rng) -> Vec<u8> {
    let mut members = vec![
        (
            quoted("type"),
            field(rng, |rng| rng.range(0, 6).to_string().into_bytes()),
        ),
        (quoted("timestamp"), field(rng, number)),
    ];
    if rng.below(4) != 0 {
        members.push((quoted("data"), value(rng, 3)));
    }
    shuffle_and_drop(rng, &mut members);
    object(rng, members)
}

/// Shuffles members now and then, and now and then drops or doubles one.
fn shuffle_and_drop(rng: &mut Rng, members: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    if rng.one_in(4) {
        for i in (1..members.len()).rev() {
            let j = rng.below(i + 1);
            members.swap(i, j);
        }
    }
    if rng.one_in(12) && !members.is_empty() {
        members.remove(rng.below(members.len()));
    }
    if rng.one_in(16) && !members.is_empty() {
        let m = members[rng.below(members.len())].clone();
        members.push(m);
    }
    if rng.one_in(8) {
        members.push((quoted(rng.pick(KEYS)), value(rng, 2)));
    }
}

/// A whole client message from the protocol's vocabulary.
pub fn message(rng: &mut Rng) -> Vec<u8> {
    let kind = rng.pick(TYPES);
    let mut data: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let sid = |rng: &mut Rng| field(rng, session_id);
    let index = |rng: &mut Rng| field(rng, small);
    match kind {
        "events_batch" | "events_batc\\u0068" => {
            let n = if rng.one_in(10) {
                rng.range(3, 40)
            } else {
                rng.size(6)
            };
            let events: Vec<Vec<u8>> = (0..n).map(|_| event(rng)).collect();
            data.push((
                quoted("events"),
                [b"[".to_vec(), events.join(&b","[..]), b"]".to_vec()].concat(),
            ));
            if rng.below(3) != 0 {
                data.push((quoted("sessionId"), sid(rng)));
            }
            if rng.below(3) != 0 {
                data.push((quoted("seq"), index(rng)));
            }
        }
        "session_start" => {
            data.push((quoted("sessionId"), sid(rng)));
            for key in ["userId", "url", "userAgent", "referrer", "timeZone"] {
                if rng.one_in(2) {
                    data.push((quoted(key), field(rng, string)));
                }
            }
            if rng.one_in(2) {
                let viewport = vec![
                    (quoted("width"), index(rng)),
                    (quoted("height"), index(rng)),
                    (quoted("devicePixelRatio"), index(rng)),
                ];
                let viewport = field(rng, |rng| object(rng, viewport));
                data.push((quoted("viewport"), viewport));
            }
            if rng.one_in(2) {
                data.push((quoted("startTime"), index(rng)));
            }
        }
        "get_session_events" | "viewer_join_session" => {
            data.push((quoted("sessionId"), sid(rng)));
            data.push((quoted("fromIndex"), index(rng)));
            data.push((quoted("limit"), index(rng)));
        }
        "snapshot_missing" => {
            if rng.below(3) != 0 {
                data.push((quoted("sessionId"), sid(rng)));
            }
            let reason = |rng: &mut Rng| match rng.below(8) {
                0 => quoted(""),
                1 => quoted("too large"),
                2 => quoted(&"r".repeat(rng.range(60, 70))),
                3 => string(rng),
                _ => quoted("too_large"),
            };
            data.push((quoted("reason"), field(rng, reason)));
            data.push((quoted("bytes"), index(rng)));
            if rng.below(3) != 0 {
                data.push((
                    quoted("limitBytes"),
                    field(rng, |rng| {
                        if rng.one_in(4) {
                            b"null".to_vec()
                        } else {
                            small(rng)
                        }
                    }),
                ));
            }
        }
        _ => data.push((quoted("sessionId"), sid(rng))),
    }
    shuffle_and_drop(rng, &mut data);
    let mut members = vec![(quoted("type"), quoted(kind))];
    if !(kind == "session_end" && rng.one_in(3)) {
        members.push((quoted("data"), object(rng, data)));
    }
    shuffle_and_drop(rng, &mut members);
    object(rng, members)
}

/// Applies one JSON-aware edit to `text`, or a byte-level one when it has
/// no spans to edit. `donors` are other messages to copy values from.
pub fn mutate(rng: &mut Rng, text: &mut Vec<u8>, donors: &[&[u8]]) {
    let s = spans(text);
    if s.values.is_empty() {
        super::bytes::mutate(rng, text, donors);
        return;
    }
    let (vs, ve, kind) = rng.pick(&s.values);
    let replace = |text: &mut Vec<u8>, a: usize, b: usize, with: Vec<u8>| {
        text.splice(a..b, with);
    };
    match rng.below(14) {
        0 | 1 => replace(text, vs, ve, value(rng, 3)),
        2 => {
            // A value copied from here or from another message.
            let from: &[u8] = if !donors.is_empty() && rng.one_in(2) {
                rng.pick(donors)
            } else {
                text
            };
            let fs = spans(from);
            if let Some(&(a, b, _)) = fs.values.get(rng.below(fs.values.len())) {
                let copy = from[a..b].to_vec();
                replace(text, vs, ve, copy);
            }
        }
        3 | 4 if !s.members.is_empty() => {
            // Drop a member with the comma before or after it.
            let m = rng.pick(&s.members);
            let mut a = m.key.0;
            let mut b = m.end;
            let after = text[b..].iter().position(|c| !c.is_ascii_whitespace());
            if after.is_some_and(|i| text[b + i] == b',') {
                b += after.unwrap_or(0) + 1;
            } else if let Some(i) = text[..a].iter().rposition(|c| !c.is_ascii_whitespace()) {
                if text[i] == b',' {
                    a = i;
                }
            }
            text.drain(a..b);
        }
        5 if !s.members.is_empty() => {
            // Twice the same member.
            let m = rng.pick(&s.members);
            let copy = [b",".to_vec(), text[m.key.0..m.end].to_vec()].concat();
            text.splice(m.end..m.end, copy);
        }
        6 if !s.members.is_empty() => {
            let m = rng.pick(&s.members);
            replace(text, m.key.0, m.key.1, quoted(rng.pick(KEYS)));
        }
        7 if !s.members.is_empty() => {
            // Two members of one object trade places (`data` before
            // `type` takes the decoder off its one-pass path).
            let m = rng.pick(&s.members);
            let siblings: Vec<&Member> =
                s.members.iter().filter(|o| o.parent == m.parent).collect();
            let o = *rng.pick(&siblings);
            let (first, second) = if m.key.0 < o.key.0 { (m, o) } else { (o, m) };
            if first.end <= second.key.0 {
                let a = text[first.key.0..first.end].to_vec();
                let b = text[second.key.0..second.end].to_vec();
                text.splice(second.key.0..second.end, a);
                text.splice(first.key.0..first.end, b);
            }
        }
        8 if kind == Kind::String && ve - vs >= 2 => {
            let at = rng.range(vs + 1, ve - 1);
            text.splice(at..at, rng.pick(INSIDE_STRINGS).iter().copied());
        }
        9 => {
            let list = if rng.one_in(2) { BAD_NUMBERS } else { NUMBERS };
            replace(text, vs, ve, rng.pick(list).as_bytes().to_vec());
        }
        10 => {
            let inner = text[vs..ve].to_vec();
            replace(text, vs, ve, nested(rng, &inner));
        }
        11 if kind == Kind::Array => {
            // The array's elements many times over (past the events limit).
            let items: Vec<&[u8]> = s
                .elements
                .iter()
                .filter(|e| e.2 == vs)
                .map(|&(a, b, _)| &text[a..b])
                .collect();
            if !items.is_empty() {
                let times = rng.range(2, 12);
                let many = vec![items.join(&b","[..]); times].join(&b","[..]);
                let with = [b"[".to_vec(), many, b"]".to_vec()].concat();
                replace(text, vs, ve, with);
            }
        }
        12 => {
            let at = rng.pick(&[vs, ve]);
            text.splice(at..at, rng.pick(WHITESPACE).iter().copied());
        }
        _ => {
            // The same content as another type: "3" for 3, [v] or {"a":v}
            // for v, the text of an object as a string.
            let inner = text[vs..ve].to_vec();
            let with = match kind {
                Kind::String => inner[1..inner.len().saturating_sub(1).max(1)].to_vec(),
                Kind::Scalar if rng.one_in(2) => [b"\"".as_slice(), &inner, b"\""].concat(),
                _ if rng.one_in(2) => [b"[".as_slice(), &inner, b"]"].concat(),
                _ => [b"{\"a\":".as_slice(), &inner, b"}"].concat(),
            };
            replace(text, vs, ve, with);
        }
    }
}
