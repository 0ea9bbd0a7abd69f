//! A reference ingest server in Rust, speaking the tracker side of
//! replaywire's protocol (docs/protocol.md), so the benchmark suite can put
//! replaywire next to what a performance-minded Rust developer would write
//! with the usual crates: tokio on one thread, tokio-tungstenite, and
//! serde_json with `RawValue` per event. It does the same work as the other
//! peers (node-ws/server.js, python_websockets.py); see `protocol.rs`.
//!
//! - `GET /ws?type=tracker` upgrades (no credentials: replaywire's
//!   development mode); any other path or type is answered 400;
//! - sessions live in a process-wide map, so a reconnecting tracker resumes;
//!   each keeps its newest 20,000 events (MAX_EVENTS_PER_SESSION) as slices
//!   of the messages they came in;
//! - the answers to the messages of one socket read leave in one write:
//!   every message tungstenite can hand out without waiting is answered
//!   (`feed`) before one `flush`.
//!
//! Left out, as by the other peers: storage, viewers, compressed binary
//! messages, credentials and rate limits. Stopped by SIGTERM or SIGINT
//! (their default action: nothing outlives the process).
//!
//!     peer --port 9000      # serves until SIGTERM/SIGINT
//!     peer --version        # versions, as JSON

mod protocol;

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use protocol::{Connection, Sessions, Text, MAX_MESSAGE_BYTES};

/// `/ws?type=tracker` only; anything else is refused before the upgrade.
#[allow(clippy::result_large_err)] // tungstenite's callback type
fn trackers_only(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    let uri = request.uri();
    let tracker = uri.path() == "/ws"
        && uri
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("type=")))
            == Some("tracker");
    if tracker {
        return Ok(response);
    }
    let mut refused = ErrorResponse::new(Some("expected /ws?type=tracker\n".into()));
    *refused.status_mut() = StatusCode::BAD_REQUEST;
    Err(refused)
}

/// The answer to one message, fed (not flushed) to the socket.
async fn reply(
    ws: &mut WebSocketStream<TcpStream>,
    sessions: &RefCell<Sessions>,
    conn: &mut Connection,
    message: Message,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let answer = match message {
        Message::Text(text) => {
            let text = Text { text: text.as_str(), owner: text.as_ref() };
            protocol::answer(&mut sessions.borrow_mut(), conn, text)
        }
        Message::Binary(_) => {
            r#"{"type":"error","data":{"code":"invalid_message","message":"this server takes no compressed binary messages"}}"#.to_owned()
        }
        // tungstenite answers pings and the close handshake by itself.
        _ => return Ok(()),
    };
    ws.feed(Message::Text(Utf8Bytes::from(answer))).await
}

/// One tracker connection: answer its messages in order until it closes
/// or fails (a tracker that goes away without a close frame, as the load
/// generator does at its deadline, is no error here).
async fn track(stream: TcpStream, sessions: Rc<RefCell<Sessions>>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, trackers_only, Some(config)).await
    else {
        return;
    };
    let mut conn = Connection::default();
    while let Some(Ok(message)) = ws.next().await {
        if reply(&mut ws, &sessions, &mut conn, message).await.is_err() {
            return;
        }
        // Every message already read (or readable without waiting) is
        // answered before the one flush.
        while let Some(next) = ws.next().now_or_never() {
            let Some(Ok(message)) = next else {
                let _ = ws.flush().await;
                return;
            };
            if reply(&mut ws, &sessions, &mut conn, message).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn serve(listener: TcpListener) {
    let sessions = Rc::new(RefCell::new(Sessions::default()));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::task::spawn_local(track(stream, sessions.clone()));
            }
            Err(e) => eprintln!("accept: {e}"), // EMFILE and the like: go on
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: peer --port PORT [--host HOST] | --version");
    std::process::exit(2);
}

fn main() {
    let (mut port, mut host) = (0u16, "127.0.0.1".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--version" => {
                println!("{}", env!("PEER_VERSIONS"));
                return;
            }
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--host" => host = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a current-thread runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {host}:{port}: {e}"));
        serve(listener).await;
    });
}
