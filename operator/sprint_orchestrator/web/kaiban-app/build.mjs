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
  plugins: [nodeBuiltins],
});
