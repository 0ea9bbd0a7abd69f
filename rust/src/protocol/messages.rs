//! The client messages other than `events_batch`, as plain serde structs,
//! and the two sides' unions of them: [`TrackerMessage`], [`ViewerMessage`].
//!
//! Field names are camelCase on the wire. Unknown fields are ignored, and
//! every optional field may be `null` or absent. `events_batch` needs raw
//! event bytes and per-event validation, so it lives in [`super::batch`].

use serde::Deserialize;

use super::batch::EventsBatch;

/// Longest session id accepted, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// One decoded message of a tracker connection.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerMessage {
    SessionStart(SessionStart),
    EventsBatch(EventsBatch),
    SessionEnd(SessionEnd),
    SnapshotMissing(SnapshotMissing),
}

impl TrackerMessage {
    /// Every type's wire name, by [`TrackerMessage::index`]: the engines
    /// count the messages of each type there (`Counters::messages`), and
    /// Python reads the names as `TRACKER_MESSAGE_TYPES`.
    pub const TYPES: [&'static str; 4] = [
        "events_batch",
        "session_start",
        "session_end",
        "snapshot_missing",
    ];
    pub const EVENTS_BATCH: usize = 0;
    pub const SESSION_START: usize = 1;
    pub const SESSION_END: usize = 2;
    pub const SNAPSHOT_MISSING: usize = 3;

    /// The message's place in [`TrackerMessage::TYPES`].
    pub fn index(&self) -> usize {
        match self {
            TrackerMessage::EventsBatch(_) => Self::EVENTS_BATCH,
            TrackerMessage::SessionStart(_) => Self::SESSION_START,
            TrackerMessage::SessionEnd(_) => Self::SESSION_END,
            TrackerMessage::SnapshotMissing(_) => Self::SNAPSHOT_MISSING,
        }
    }

    /// The wire name of the message's `type`.
    pub fn type_name(&self) -> &'static str {
        Self::TYPES[self.index()]
    }

    /// The session the message names, if it names one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            TrackerMessage::SessionStart(m) => Some(&m.session_id),
            TrackerMessage::EventsBatch(m) => m.session_id(),
            TrackerMessage::SessionEnd(m) => m.session_id.as_deref(),
            TrackerMessage::SnapshotMissing(m) => m.session_id.as_deref(),
        }
    }
}

/// One decoded message of a viewer connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerMessage {
    ViewerJoin(ViewerJoin),
    ViewerLeave(ViewerLeave),
    GetSessionEvents(GetSessionEvents),
}

impl ViewerMessage {
    /// The wire name of the message's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ViewerMessage::ViewerJoin(_) => "viewer_join_session",
            ViewerMessage::ViewerLeave(_) => "viewer_leave_session",
            ViewerMessage::GetSessionEvents(_) => "get_session_events",
        }
    }

    /// The session the message names.
    pub fn session_id(&self) -> &str {
        match self {
            ViewerMessage::ViewerJoin(m) => &m.session_id,
            ViewerMessage::ViewerLeave(m) => &m.session_id,
            ViewerMessage::GetSessionEvents(m) => &m.session_id,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Viewport {
    #[serde(default)]
    pub width: Option<i64>,
    #[serde(default)]
    pub height: Option<i64>,
    #[serde(default)]
    pub device_pixel_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStart {
    pub session_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub viewport: Option<Viewport>,
    #[serde(default)]
    pub start_time: Option<f64>,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnd {
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerJoin {
    pub session_id: String,
    #[serde(default)]
    pub from_index: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerLeave {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetSessionEvents {
    pub session_id: String,
    /// `null` and absent both mean 0.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub from_index: u64,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Longest `reason` of a `snapshot_missing`, in bytes (it is ASCII).
pub const MAX_REASON_CHARS: usize = 64;

/// The tracker could not deliver the page's full snapshot (`reason`, e.g.
/// `too_large`: `bytes` over the server's `limitBytes`); the session goes
/// on with incremental events only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMissing {
    #[serde(default)]
    pub session_id: Option<String>,
    pub reason: String,
    /// Size of the snapshot that could not be sent, in bytes.
    pub bytes: u64,
    /// The limit it was over, when the tracker knew one.
    #[serde(default)]
    pub limit_bytes: Option<u64>,
}

impl SnapshotMissing {
    /// Why the message is unacceptable beyond its JSON shape, or None:
    /// `reason` is an identifier (ASCII letters, digits, `_`, `-`, `.`) of
    /// 1 to [`MAX_REASON_CHARS`] characters, and sizes fit a signed 64-bit
    /// column.
    pub(crate) fn problem(&self) -> Option<String> {
        let reason = &self.reason;
        if reason.is_empty() || reason.len() > MAX_REASON_CHARS {
            return Some(format!(
                "snapshot_missing: reason must be 1 to {MAX_REASON_CHARS} characters"
            ));
        }
        if !reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Some(
                "snapshot_missing: reason may hold only ASCII letters, digits, '_', '-' and '.'"
                    .to_owned(),
            );
        }
        let too_big = |n: u64| i64::try_from(n).is_err();
        if too_big(self.bytes) || self.limit_bytes.is_some_and(too_big) {
            return Some("snapshot_missing: bytes and limitBytes must be below 2^63".to_owned());
        }
        None
    }
}

/// A nested object that may be null. Derived structs would also accept an
/// array (`[1440, 900]`); this refuses it.
fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let Some(raw) = Option::<Box<serde_json::value::RawValue>>::deserialize(d)? else {
        return Ok(None);
    };
    if !raw.get().starts_with('{') {
        return Err(D::Error::custom("expected a JSON object"));
    }
    serde_json::from_str(raw.get())
        .map(Some)
        .map_err(D::Error::custom)
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// Why a session id is unacceptable, or None when it is fine.
pub(crate) fn session_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("sessionId must not be empty".to_owned());
    }
    // Byte length bounds the character count from above: most ids are ASCII
    // and skip the count entirely.
    if id.len() > MAX_SESSION_ID_CHARS && id.chars().count() > MAX_SESSION_ID_CHARS {
        return Some(format!(
            "sessionId is longer than {MAX_SESSION_ID_CHARS} characters"
        ));
    }
    None
}
