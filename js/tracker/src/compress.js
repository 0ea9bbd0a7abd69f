/**
 * The compressed binary tracker frame of docs/protocol.md ("Compressed
 * tracker messages"): an 8-byte header (version 1, codec 1 = raw deflate,
 * two reserved bytes, the message's decompressed byte length, big-endian)
 * followed by the message's UTF-8 JSON compressed with the browser's own
 * CompressionStream('deflate-raw'), so the tracker carries no compressor.
 *
 * Large messages (a full snapshot of a heavy page is tens of MB) are
 * compressed in a Web Worker, off the page's main thread. The worker is
 * made from a Blob URL; a page whose Content-Security-Policy forbids that
 * gets the same compression on the main thread, where CompressionStream
 * still works in chunks between the page's own tasks.
 */
export const FRAME_VERSION = 1;
export const CODEC_DEFLATE = 1;

export function compressionSupported() {
  return typeof CompressionStream === "function";
}

/**
 * One message to one frame. Self-contained on purpose: its source text is
 * what the worker runs, so it names nothing outside itself.
 * @param {string} message
 * @returns {Promise<Uint8Array>}
 */
async function frameOf(message) {
  const raw = new TextEncoder().encode(message);
  const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  const deflated = new Uint8Array(await new Response(stream).arrayBuffer());
  const frame = new Uint8Array(8 + deflated.length);
  const view = new DataView(frame.buffer);
  view.setUint8(0, 1); // FRAME_VERSION
  view.setUint8(1, 1); // CODEC_DEFLATE
  view.setUint32(4, raw.length);
  frame.set(deflated, 8);
  return frame;
}

const WORKER_SOURCE = `const frameOf = ${frameOf.toString()};
onmessage = async (e) => {
  try {
    const frame = await frameOf(e.data.message);
    postMessage({ id: e.data.id, frame }, [frame.buffer]);
  } catch (err) {
    postMessage({ id: e.data.id, error: String(err) });
  }
};`;

/** The compressing worker, made on first use; null once it proved unusable. */
let worker;
const jobs = new Map(); // id -> {resolve, reject}
let nextJob = 0;

function failWorker() {
  worker = null;
  for (const { reject } of jobs.values()) reject(new Error("compression worker unavailable"));
  jobs.clear();
}

function getWorker() {
  if (worker !== undefined) return worker;
  try {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    worker = new Worker(url);
    URL.revokeObjectURL(url);
    worker.onmessage = (e) => {
      const job = jobs.get(e.data.id);
      if (!job) return;
      jobs.delete(e.data.id);
      if (e.data.error) job.reject(new Error(e.data.error));
      else job.resolve(e.data.frame);
    };
    worker.onerror = failWorker; // e.g. blocked by the page's CSP
  } catch {
    worker = null;
  }
  return worker;
}

/**
 * @param {string} message a whole protocol message as JSON text
 * @param {{workerMinBytes?: number}} [options] messages at least this long
 *   are compressed in the worker when there is one
 * @returns {Promise<Uint8Array>} the binary frame to send
 */
export async function compressMessage(message, { workerMinBytes = 64 * 1024 } = {}) {
  const w = message.length >= workerMinBytes && typeof Worker === "function" ? getWorker() : null;
  if (w) {
    try {
      return await new Promise((resolve, reject) => {
        const id = nextJob++;
        jobs.set(id, { resolve, reject });
        w.postMessage({ id, message });
      });
    } catch {
      /* the worker failed: compress here instead */
    }
  }
  return frameOf(message);
}
