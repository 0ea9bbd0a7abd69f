/**
 * Decoding what replaywire sends viewers (docs/protocol.md, "Codecs"): text
 * frames are JSON messages; binary frames carry a run of events compressed
 * with the codec the viewer asked for. A port of python/replaywire/client.py.
 *
 * Binary header, big-endian: version u8 (2), kind u8 (1 snapshot, 2 delta,
 * 3 session_events), codec u8 (0 none, 1 deflate, 2 zstd), flags u8 (bit 0
 * resync), count u32, firstIndex u64, raw length u32, serverTime u64 (epoch
 * ms), id length u16, id, then the compressed events' JSON array. Version 1
 * (older servers) has no serverTime; its messages decode with serverTime
 * null.
 */
import { decompress as zstdDecompress } from "fzstd";

const KINDS = { 1: "snapshot", 2: "delta", 3: "session_events" };
const CODECS = { 0: "none", 1: "deflate", 2: "zstd" };
const HEADER_BYTES = { 1: 22, 2: 30 }; // by version
// Refuse frames announcing more than this before decompressing anything:
// the server never sends a message over VIEWER_BATCH_BYTES (4 MiB by default).
export const MAX_FRAME_EVENTS_BYTES = 256 * 1024 * 1024;

/** An events message: {type, sessionId, firstIndex, count, codec, resync, serverTime, events}. */
export async function decodeFrame(data) {
  if (typeof data === "string") {
    const message = JSON.parse(data);
    if (message.type in { snapshot: 1, delta: 1, session_events: 1 }) {
      const d = message.data;
      return {
        type: message.type,
        sessionId: d.sessionId,
        firstIndex: d.firstIndex,
        count: d.count,
        codec: d.codec || "none",
        resync: Boolean(d.resync),
        serverTime: typeof d.serverTime === "number" ? d.serverTime : null,
        events: d.events,
      };
    }
    return message;
  }
  const bytes = new Uint8Array(data);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 1) throw new Error("empty binary frame");
  const version = view.getUint8(0);
  const headerBytes = HEADER_BYTES[version];
  if (!headerBytes) throw new Error(`binary frame version ${version} is not supported`);
  if (bytes.length < headerBytes) throw new Error("binary frame shorter than its header");
  const kind = KINDS[view.getUint8(1)];
  const codec = CODECS[view.getUint8(2)];
  if (!kind || !codec) throw new Error("binary frame of unknown kind or codec");
  const flags = view.getUint8(3);
  const count = view.getUint32(4);
  const firstIndex = Number(view.getBigUint64(8));
  const rawLength = view.getUint32(16);
  const serverTime = version >= 2 ? Number(view.getBigUint64(20)) : null;
  const idLength = view.getUint16(headerBytes - 2);
  if (rawLength > MAX_FRAME_EVENTS_BYTES) throw new Error(`frame announces ${rawLength} bytes`);
  const sessionId = new TextDecoder().decode(bytes.subarray(headerBytes, headerBytes + idLength));
  const payload = bytes.subarray(headerBytes + idLength);
  let json;
  if (codec === "none") json = payload;
  else if (codec === "deflate") json = await inflateRaw(payload);
  else json = zstdDecompress(payload, new Uint8Array(rawLength));
  if (json.length !== rawLength) throw new Error(`decompressed ${json.length} bytes, header says ${rawLength}`);
  const text = new TextDecoder().decode(json);
  json = null; // a snapshot's bytes may be 30 MB: let them go before parsing their text
  return {
    type: kind,
    sessionId,
    firstIndex,
    count,
    codec,
    resync: Boolean(flags & 1),
    serverTime,
    events: JSON.parse(text),
  };
}

/** Raw deflate (RFC 1951) with the browser's own DecompressionStream. */
export async function inflateRaw(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
