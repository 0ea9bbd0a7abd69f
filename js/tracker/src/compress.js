/**
 * The compressed binary tracker frame of docs/protocol.md ("Compressed
 * tracker messages"): an 8-byte header (version 1, codec 1 = raw deflate,
 * two reserved bytes, the message's decompressed byte length, big-endian)
 * followed by the message's UTF-8 JSON compressed with the browser's own
 * CompressionStream('deflate-raw'), so the tracker carries no compressor.
 */
export const FRAME_VERSION = 1;
export const CODEC_DEFLATE = 1;

export function compressionSupported() {
  return typeof CompressionStream === "function";
}

/**
 * @param {string} message a whole protocol message as JSON text
 * @returns {Promise<Uint8Array>} the binary frame to send
 */
export async function compressMessage(message) {
  const raw = new TextEncoder().encode(message);
  const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  const deflated = new Uint8Array(await new Response(stream).arrayBuffer());
  const frame = new Uint8Array(8 + deflated.length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, FRAME_VERSION);
  view.setUint8(1, CODEC_DEFLATE);
  view.setUint32(4, raw.length);
  frame.set(deflated, 8);
  return frame;
}
