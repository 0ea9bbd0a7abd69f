//! PostgreSQL binary `COPY` encoding of stored chunk rows.
//!
//! The PostgreSQL storage backend writes each flush with one
//! `COPY chunks (...) FROM STDIN (FORMAT BINARY)`; this module builds the
//! whole stream in memory, sans-IO: header, one tuple per chunk, trailer.
//! The format is the one documented under "Binary Format" in PostgreSQL's
//! `COPY` reference: every integer is big-endian, every field is an `int32`
//! length (`-1` for NULL) followed by the type's binary `send` form.
//!
//! The columns, in order ([`COLUMNS`]):
//!
//! | column               | type          | value                                     |
//! |----------------------|---------------|-------------------------------------------|
//! | `session_id`         | `text`        | UTF-8 bytes                               |
//! | `session_started_at` | `timestamptz` | µs since 2000-01-01 00:00 UTC             |
//! | `seq`                | `int8`        |                                           |
//! | `first_index`        | `int8`        |                                           |
//! | `last_index`         | `int8`        | `first_index + event_count - 1`           |
//! | `event_count`        | `int4`        |                                           |
//! | `first_ts`           | `float8`      | client ms, NULL when absent               |
//! | `last_ts`            | `float8`      | client ms, NULL when absent               |
//! | `codec`              | `text`        |                                           |
//! | `received_at`        | `timestamptz` | when the server accepted the batch, NULL when unknown |
//! | `stored_at`          | `timestamptz` | the same for every row                    |
//! | `payload`            | `bytea`       | raw bytes                                 |
//!
//! PostgreSQL checks every field as it arrives and rejects the whole stream
//! on the first bad one, so [`ChunkCopy::new`] checks first what the server
//! would refuse (timestamps out of range, NUL in text, oversized fields) and
//! says which chunk and why; after that, writing cannot fail. The size is
//! known before anything is written, so the caller allocates once
//! ([`ChunkCopy::encoded_len`]) and the copying ([`ChunkCopy::write_into`])
//! touches no shared state: the Python binding runs it without the GIL.
//!
//! Text is sent as UTF-8, which the server reads in the connection's
//! `client_encoding`: the connection must use `UTF8` (psycopg's default when
//! the database is UTF-8).

use thiserror::Error;

/// The columns of a row, in stream order, with their PostgreSQL types.
pub const COLUMNS: [(&str, &str); 12] = [
    ("session_id", "text"),
    ("session_started_at", "timestamptz"),
    ("seq", "int8"),
    ("first_index", "int8"),
    ("last_index", "int8"),
    ("event_count", "int4"),
    ("first_ts", "float8"),
    ("last_ts", "float8"),
    ("codec", "text"),
    ("received_at", "timestamptz"),
    ("stored_at", "timestamptz"),
    ("payload", "bytea"),
];

/// The 11-byte signature that opens every binary `COPY` stream.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Signature, flags field (`int32` 0: no OIDs) and header extension length
/// (`int32` 0).
const HEADER_LEN: usize = SIGNATURE.len() + 4 + 4;

/// The field count `-1` that ends the stream.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The `int16` field count that opens each tuple.
const FIELD_COUNT: i16 = COLUMNS.len() as i16;

/// Bytes of a tuple besides its text, bytea and nullable fields: the field
/// count, twelve length words, two timestamps, three `int8` and one `int4`.
const ROW_FIXED_LEN: usize = 2 + 4 * COLUMNS.len() + 8 + 3 * 8 + 4 + 8;

/// Largest `text` or `bytea` value PostgreSQL stores: a varlena is at most
/// 1 GiB - 1 bytes including its 4-byte header. Also keeps every length
/// within the format's `int32`.
pub const MAX_FIELD_BYTES: usize = (1 << 30) - 1 - 4;

/// Seconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
pub const PG_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

/// PostgreSQL's `MIN_TIMESTAMP`, 4714-11-24 00:00:00 UTC BC, in µs since
/// its epoch (`datatype/timestamp.h`). `timestamptz_recv` rejects less.
pub const MIN_TIMESTAMP_MICROS: i64 = -211_813_488_000_000_000;

/// PostgreSQL's `END_TIMESTAMP`, 294277-01-01 00:00:00 UTC, exclusive.
pub const END_TIMESTAMP_MICROS: i64 = 9_223_371_331_200_000_000;

/// A value the stream cannot carry because PostgreSQL would refuse it. All
/// are local faults: the chunks come from this server, not from a peer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CopyError {
    #[error("{0} is not a finite number of seconds")]
    NonFiniteTimestamp(f64),
    #[error(
        "{0} seconds since 1970 is outside PostgreSQL's timestamptz range \
         (4714-11-24 BC to 294276-12-31 AD)"
    )]
    TimestampOutOfRange(f64),
    #[error("event_count {0} is negative")]
    NegativeEventCount(i32),
    #[error(
        "last_index = first_index {first_index} + event_count {event_count} - 1 \
         does not fit in int8"
    )]
    LastIndexOutOfRange { first_index: i64, event_count: i32 },
    #[error("{column} contains a NUL character, which PostgreSQL text cannot hold")]
    NulInText { column: &'static str },
    #[error("{column} is {len} bytes, over the {MAX_FIELD_BYTES} a PostgreSQL value can hold")]
    FieldTooLong { column: &'static str, len: usize },
}

/// A [`CopyError`] in the chunk at `index` of the rows given.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("chunk {index}: {error}")]
pub struct RowError {
    pub index: usize,
    pub error: CopyError,
}

/// A `timestamptz` value: microseconds since 2000-01-01 00:00:00 UTC,
/// within the range PostgreSQL accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamptz(i64);

impl Timestamptz {
    /// Epoch seconds (Unix, as Python's `time.time()`), rounded to the
    /// nearest microsecond, ties to even.
    ///
    /// The whole seconds and the fraction are converted apart, exactly as
    /// CPython's `datetime.fromtimestamp` does, so the two always agree to
    /// the microsecond; scaling the whole value by 10^6 first would round
    /// twice.
    pub fn from_epoch_seconds(seconds: f64) -> Result<Self, CopyError> {
        if !seconds.is_finite() {
            return Err(CopyError::NonFiniteTimestamp(seconds));
        }
        let out_of_range = CopyError::TimestampOutOfRange(seconds);
        // Wider than PostgreSQL's range on both sides, narrow enough that the
        // integer arithmetic below cannot overflow.
        if seconds.abs() >= 1e13 {
            return Err(out_of_range);
        }
        let whole = seconds.trunc();
        // Exact: `whole` and `seconds` share their leading bits.
        let fraction = seconds - whole;
        let micros = (whole as i64 - PG_EPOCH_UNIX_SECONDS) * 1_000_000
            + (fraction * 1e6).round_ties_even() as i64;
        Self::from_micros(micros).ok_or(out_of_range)
    }

    /// Microseconds since 2000-01-01 UTC; None outside PostgreSQL's range.
    pub fn from_micros(micros: i64) -> Option<Self> {
        (MIN_TIMESTAMP_MICROS..END_TIMESTAMP_MICROS)
            .contains(&micros)
            .then_some(Timestamptz(micros))
    }

    /// The wire value: microseconds since 2000-01-01 00:00:00 UTC.
    pub fn micros(self) -> i64 {
        self.0
    }
}

/// Epoch seconds to `timestamptz` microseconds; see
/// [`Timestamptz::from_epoch_seconds`].
pub fn epoch_seconds_to_pg_micros(seconds: f64) -> Result<i64, CopyError> {
    Timestamptz::from_epoch_seconds(seconds).map(Timestamptz::micros)
}

/// One stored chunk, borrowing its text and payload. `last_index` is
/// derived; `stored_at` is the stream's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkRow<'a> {
    pub session_id: &'a str,
    pub session_started_at: Timestamptz,
    pub seq: i64,
    pub first_index: i64,
    pub event_count: i32,
    /// The client's event timestamps, ms, stored as given (NaN included).
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub codec: &'a str,
    /// When the server accepted the batch; None for chunks from before it
    /// recorded that (an old spool record), stored as NULL.
    pub received_at: Option<Timestamptz>,
    pub payload: &'a [u8],
}

impl ChunkRow<'_> {
    /// Index of the chunk's last event (`first_index - 1` when it is empty).
    pub fn last_index(&self) -> Option<i64> {
        // `event_count - 1` first: `first_index + event_count` may overflow
        // where the last index does not.
        self.first_index
            .checked_add(i64::from(self.event_count) - 1)
    }

    /// What PostgreSQL would refuse in this row, if anything.
    pub fn check(&self) -> Result<(), CopyError> {
        if self.event_count < 0 {
            return Err(CopyError::NegativeEventCount(self.event_count));
        }
        if self.last_index().is_none() {
            return Err(CopyError::LastIndexOutOfRange {
                first_index: self.first_index,
                event_count: self.event_count,
            });
        }
        for (column, text) in [("session_id", self.session_id), ("codec", self.codec)] {
            if text.as_bytes().contains(&0) {
                return Err(CopyError::NulInText { column });
            }
        }
        for (column, len) in [
            ("session_id", self.session_id.len()),
            ("codec", self.codec.len()),
            ("payload", self.payload.len()),
        ] {
            if len > MAX_FIELD_BYTES {
                return Err(CopyError::FieldTooLong { column, len });
            }
        }
        Ok(())
    }

    /// Bytes of this row's tuple. Cannot overflow once [`Self::check`] passed.
    fn encoded_len(&self) -> usize {
        let floats = [self.first_ts, self.last_ts].iter().flatten().count();
        let times = usize::from(self.received_at.is_some());
        ROW_FIXED_LEN
            + self.session_id.len()
            + self.codec.len()
            + self.payload.len()
            + 8 * (floats + times)
    }
}

/// A checked `COPY` stream of chunk rows, ready to be written.
#[derive(Debug, Clone, Copy)]
pub struct ChunkCopy<'a> {
    rows: &'a [ChunkRow<'a>],
    stored_at: Timestamptz,
    len: usize,
}

impl<'a> ChunkCopy<'a> {
    /// Check every row and size the stream.
    pub fn new(rows: &'a [ChunkRow<'a>], stored_at: Timestamptz) -> Result<Self, RowError> {
        let mut len = HEADER_LEN + TRAILER.len();
        for (index, row) in rows.iter().enumerate() {
            row.check().map_err(|error| RowError { index, error })?;
            // Rows are each under 3 GiB; only a 32-bit target could overflow.
            len = len
                .checked_add(row.encoded_len())
                .expect("COPY stream larger than the address space");
        }
        Ok(ChunkCopy {
            rows,
            stored_at,
            len,
        })
    }

    /// Exact size of the stream in bytes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// Write the stream into `out`, which must be exactly
    /// [`Self::encoded_len`] bytes long (panics otherwise).
    pub fn write_into(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.len, "COPY buffer of the wrong size");
        let mut w = Writer(out);
        w.put(SIGNATURE);
        w.put(&0i32.to_be_bytes()); // flags: no OIDs
        w.put(&0i32.to_be_bytes()); // header extension: none
        for row in self.rows {
            w.put(&FIELD_COUNT.to_be_bytes());
            w.field(row.session_id.as_bytes());
            w.field(&row.session_started_at.micros().to_be_bytes());
            w.field(&row.seq.to_be_bytes());
            w.field(&row.first_index.to_be_bytes());
            let last_index = row.last_index().expect("checked in new");
            w.field(&last_index.to_be_bytes());
            w.field(&row.event_count.to_be_bytes());
            w.nullable(row.first_ts.map(f64::to_be_bytes));
            w.nullable(row.last_ts.map(f64::to_be_bytes));
            w.field(row.codec.as_bytes());
            w.nullable(row.received_at.map(|t| t.micros().to_be_bytes()));
            w.field(&self.stored_at.micros().to_be_bytes());
            w.field(row.payload);
        }
        w.put(&TRAILER);
        debug_assert!(w.0.is_empty());
    }

    /// The stream in a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len];
        self.write_into(&mut out);
        out
    }
}

/// Check `rows` and encode them as one complete binary `COPY` stream.
pub fn encode_chunks(rows: &[ChunkRow<'_>], stored_at: Timestamptz) -> Result<Vec<u8>, RowError> {
    Ok(ChunkCopy::new(rows, stored_at)?.to_vec())
}

/// Fills a buffer front to back; the unwritten rest is what it holds.
struct Writer<'b>(&'b mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let (head, rest) = std::mem::take(&mut self.0).split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        self.0 = rest;
    }

    /// A non-NULL field: its length, then its bytes.
    fn field(&mut self, value: &[u8]) {
        let len = i32::try_from(value.len()).expect("field lengths are checked in new");
        self.put(&len.to_be_bytes());
        self.put(value);
    }

    fn nullable<const N: usize>(&mut self, value: Option<[u8; N]>) {
        match value {
            Some(bytes) => self.field(&bytes),
            None => self.put(&(-1i32).to_be_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: f64) -> Timestamptz {
        Timestamptz::from_epoch_seconds(seconds).unwrap()
    }

    fn row<'a>() -> ChunkRow<'a> {
        ChunkRow {
            session_id: "s1",
            session_started_at: ts(946_684_801.5),
            seq: 7,
            first_index: 10,
            event_count: 3,
            first_ts: Some(1.5),
            last_ts: None,
            codec: "none",
            received_at: Some(ts(946_684_802.0)),
            payload: b"[1]",
        }
    }

    #[test]
    fn empty_stream_is_header_and_trailer() {
        let out = encode_chunks(&[], ts(0.0)).unwrap();
        assert_eq!(out, b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\xff\xff");
    }

    #[test]
    fn one_row_with_a_null_byte_for_byte() {
        let out = encode_chunks(&[row()], ts(946_684_800.0)).unwrap();
        let mut expected: Vec<u8> = Vec::new();
        expected.extend(b"PGCOPY\n\xff\r\n\0");
        expected.extend(b"\0\0\0\0"); // flags
        expected.extend(b"\0\0\0\0"); // header extension length
        expected.extend(b"\0\x0c"); // 12 fields
        expected.extend(b"\0\0\0\x02s1"); // session_id
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\x16\xe3\x60"); // started_at: 1_500_000 µs
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\0\0\x07"); // seq
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\0\0\x0a"); // first_index
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\0\0\x0c"); // last_index = 10 + 3 - 1
        expected.extend(b"\0\0\0\x04\0\0\0\x03"); // event_count
        expected.extend(b"\0\0\0\x08\x3f\xf8\0\0\0\0\0\0"); // first_ts: 1.5
        expected.extend(b"\xff\xff\xff\xff"); // last_ts: NULL
        expected.extend(b"\0\0\0\x04none"); // codec
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\x1e\x84\x80"); // received_at: 2_000_000 µs
        expected.extend(b"\0\0\0\x08\0\0\0\0\0\0\0\0"); // stored_at: the PG epoch
        expected.extend(b"\0\0\0\x03[1]"); // payload
        expected.extend(b"\xff\xff"); // trailer
        assert_eq!(out, expected);
    }

    #[test]
    fn sizes_are_exact() {
        let empty = ChunkRow {
            first_ts: None,
            received_at: None,
            payload: b"",
            ..row()
        };
        let full = ChunkRow {
            last_ts: Some(f64::NAN),
            ..row()
        };
        let rows = [row(), empty, full];
        let copy = ChunkCopy::new(&rows, ts(0.0)).unwrap();
        assert_eq!(copy.to_vec().len(), copy.encoded_len());
        for r in &rows {
            let one = encode_chunks(std::slice::from_ref(r), ts(0.0)).unwrap();
            assert_eq!(one.len(), HEADER_LEN + TRAILER.len() + r.encoded_len());
        }
    }

    #[test]
    #[should_panic(expected = "wrong size")]
    fn write_into_refuses_a_wrong_buffer() {
        let rows = [row()];
        let copy = ChunkCopy::new(&rows, ts(0.0)).unwrap();
        copy.write_into(&mut vec![0; copy.encoded_len() + 1]);
    }

    #[test]
    fn timestamps_count_from_2000_in_microseconds() {
        assert_eq!(epoch_seconds_to_pg_micros(946_684_800.0), Ok(0));
        assert_eq!(epoch_seconds_to_pg_micros(0.0), Ok(-946_684_800_000_000));
        assert_eq!(
            epoch_seconds_to_pg_micros(1_714_564_800.25),
            Ok(767_880_000_250_000)
        );
        // Before 1970 the fraction counts backwards too.
        assert_eq!(epoch_seconds_to_pg_micros(-1.5), Ok(-946_684_801_500_000));
    }

    #[test]
    fn timestamps_round_to_the_nearest_microsecond() {
        // 1714564800.1234567 is stored as ...123456716..., so it rounds up.
        assert_eq!(
            epoch_seconds_to_pg_micros(1_714_564_800.123_456_7),
            Ok(767_880_000_123_457)
        );
        assert_eq!(epoch_seconds_to_pg_micros(946_684_800.000_000_4), Ok(0));
        // Exact halves (7812.5 µs, 23437.5 µs) go to the even microsecond,
        // as in CPython's `datetime.fromtimestamp`.
        assert_eq!(epoch_seconds_to_pg_micros(946_684_800.007_812_5), Ok(7812));
        assert_eq!(epoch_seconds_to_pg_micros(946_684_800.023_437_5), Ok(23438));
        assert_eq!(
            epoch_seconds_to_pg_micros(-1.5e-6),
            Ok(-946_684_800_000_002)
        );
    }

    #[test]
    fn timestamps_outside_postgres_range_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                epoch_seconds_to_pg_micros(bad),
                Err(CopyError::NonFiniteTimestamp(_))
            ));
        }
        let first = -210_866_803_200.0; // 4714-11-24 BC
        let end = 9_224_318_016_000.0; // 294277-01-01
        assert_eq!(epoch_seconds_to_pg_micros(first), Ok(MIN_TIMESTAMP_MICROS));
        assert!(epoch_seconds_to_pg_micros(end - 0.01).is_ok());
        for bad in [first - 0.01, end, 1e300, -1e300] {
            assert_eq!(
                epoch_seconds_to_pg_micros(bad),
                Err(CopyError::TimestampOutOfRange(bad))
            );
        }
        assert_eq!(Timestamptz::from_micros(END_TIMESTAMP_MICROS), None);
        assert_eq!(Timestamptz::from_micros(MIN_TIMESTAMP_MICROS - 1), None);
    }

    #[test]
    fn rows_postgres_would_refuse_are_named() {
        let cases = [
            (
                ChunkRow {
                    event_count: -1,
                    ..row()
                },
                CopyError::NegativeEventCount(-1),
            ),
            (
                ChunkRow {
                    first_index: i64::MAX,
                    event_count: 2,
                    ..row()
                },
                CopyError::LastIndexOutOfRange {
                    first_index: i64::MAX,
                    event_count: 2,
                },
            ),
            (
                ChunkRow {
                    session_id: "a\0b",
                    ..row()
                },
                CopyError::NulInText {
                    column: "session_id",
                },
            ),
            (
                ChunkRow {
                    codec: "\0",
                    ..row()
                },
                CopyError::NulInText { column: "codec" },
            ),
        ];
        for (bad, error) in cases {
            let rows = [row(), bad];
            assert_eq!(
                encode_chunks(&rows, ts(0.0)),
                Err(RowError { index: 1, error })
            );
        }
        // Empty chunks are fine: last_index is first_index - 1.
        let empty = ChunkRow {
            event_count: 0,
            first_index: i64::MIN + 1,
            ..row()
        };
        assert_eq!(empty.last_index(), Some(i64::MIN));
        let last = ChunkRow {
            first_index: i64::MAX - 2,
            event_count: 3,
            ..row()
        };
        assert_eq!(last.last_index(), Some(i64::MAX));
        assert!(encode_chunks(&[empty], ts(0.0)).is_ok());
    }
}
