// Bundle main.jsx with esbuild into ../static/kaiban/ (app.js, app.css).
// kaiban-board's bundle imports Node built-ins (fs, http, https, url) for code paths the browser
// never takes; they resolve to an empty module here.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const empty = path.join(here, "empty.js");
const nodeBuiltins = {
  name: "node-builtins",
  setup(build) {
    build.onResolve({ filter: /^(node:)?(fs|http|https|url|path|os|crypto|stream|zlib|util|net|tls)$/ }, () => ({
      path: empty,
    }));
  },
};

// kaiban-board draws agents with <img src="https://robohash.org/NAME">: point those at the dashboard's
// own /avatars/NAME (web/avatars.py), so the page loads no image from the network.
const AVATAR_SERVICE = "https://robohash.org/";
const localAvatars = {
  name: "local-avatars",
  setup(build) {
    build.onLoad({ filter: /kaiban-board[\\/]dist[\\/]index\.js$/ }, async (args) => {
      const fs = await import("node:fs/promises");
      const source = await fs.readFile(args.path, "utf8");
      if (!source.includes(AVATAR_SERVICE)) throw new Error(`kaiban-board no longer uses ${AVATAR_SERVICE}: update build.mjs`);
      return { contents: source.replaceAll(AVATAR_SERVICE, "/avatars/"), loader: "jsx" };
    });
  },
};

await esbuild.build({
  entryPoints: [path.join(here, "main.jsx")],
  bundle: true,
  outfile: path.join(here, "..", "static", "kaiban", "app.js"),
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  define: {
    "process.env.NODE_ENV": '"production"',
    "import.meta.env": '{"MODE":"production"}',
    global: "globalThis",
  },
  loader: { ".js": "jsx", ".css": "css", ".png": "dataurl", ".svg": "dataurl", ".woff": "dataurl", ".woff2": "dataurl" },
  plugins: [nodeBuiltins, localAvatars],
});

// The board's diff view (review.js, highlight.js) as a classic script: window.SprintReview.
await esbuild.build({
  entryPoints: [path.join(here, "review.js")],
  bundle: true,
  outfile: path.join(here, "..", "static", "kaiban", "review.js"),
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
