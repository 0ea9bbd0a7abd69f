// Builds the browser assets with esbuild.
//
//   node build.mjs            everything
//   node build.mjs tracker    only js/tracker/dist (the npm package)
//
// Outputs:
//   tracker/dist/tracker.esm.js          the npm package (rrweb bundled in)
//   ../python/replaywire/static/         what the server serves and the wheel ships:
//     tracker.js                          the <script> build (stable name: the README snippet links it)
//     viewer-[hash].js, viewer-[hash].css the viewer, content-hashed so they can be cached for good
//     index.html                          the viewer page, pointing at the hashed files
//     favicon.svg                         its icon, also served at /favicon.ico
// The static folder is emptied first, so it never holds stale files.
import { build } from "esbuild";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = join(here, "..", "python", "replaywire", "static");
const only = process.argv[2];
const common = { bundle: true, minify: true, sourcemap: false, target: ["es2020"], logLevel: "warning", legalComments: "none" };

async function tracker() {
  await build({
    ...common,
    entryPoints: [join(here, "tracker/src/index.js")],
    format: "esm",
    outfile: join(here, "tracker/dist/tracker.esm.js"),
  });
}

async function staticAssets() {
  await rm(staticDir, { recursive: true, force: true });
  await mkdir(staticDir, { recursive: true });
  await build({
    ...common,
    entryPoints: [join(here, "tracker/src/snippet.js")],
    format: "iife",
    outfile: join(staticDir, "tracker.js"),
  });
  const result = await build({
    ...common,
    entryPoints: { viewer: join(here, "viewer/src/main.js") },
    format: "iife",
    outdir: staticDir,
    entryNames: "[name]-[hash]",
    metafile: true,
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((n) => n.endsWith(".js"));
  const css = outputs.find((n) => n.endsWith(".css"));
  const html = (await readFile(join(here, "viewer/src/index.html"), "utf8"))
    .replace("__VIEWER_JS__", js)
    .replace("__VIEWER_CSS__", css);
  await copyFile(join(here, "viewer/src/favicon.svg"), join(staticDir, "favicon.svg"));
  // Written last: the Makefile takes index.html as the stamp of the whole build.
  await writeFile(join(staticDir, "index.html"), html);
}

await tracker();
if (only !== "tracker") await staticAssets();
