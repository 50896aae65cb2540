// Build static/vendor/sendspin.js: entry.js (sendspin-js + our probe) bundled by esbuild,
// with every patch in patches/ applied to the published sources on the way in.
//
//   node build.mjs                    write the bundle
//   node build.mjs --check            build in memory; fail unless it equals the committed one
//   node build.mjs --patches DIR      take the patches from DIR instead (tests use this)
//
// A patch is a module in patches/ whose default export is
//   { file: "<package>/<path inside node_modules>", spots: [{ name, find, replace }] }
// or a list of those, for one change that needs spots in several files.
// Each `find` must occur exactly once in that file and every patched file must be part of
// the bundle; otherwise the build stops with an error naming the patch and the spot. So an
// upgrade of sendspin-js that moves a spot breaks the build, never silently the patch.
import { readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, "static", "vendor", "sendspin.js");

function option(name) {
  const i = process.argv.indexOf(name);
  return i === -1 ? null : process.argv[i + 1];
}

async function loadPatches(dir) {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".mjs")).sort();
  const patches = [];
  for (const name of names) {
    const exported = (await import(pathToFileURL(path.join(dir, name)).href)).default;
    for (const patch of [exported].flat()) {
      if (!patch || typeof patch.file !== "string" || !Array.isArray(patch.spots)) {
        throw new Error(`patch ${name}: default export needs {file, spots} or a list of them`);
      }
      patches.push({ name, ...patch, target: path.join(HERE, "node_modules", patch.file) });
    }
  }
  return patches;
}

function applySpots(patch, source) {
  let text = source;
  for (const spot of patch.spots) {
    const count = text.split(spot.find).length - 1;
    if (count !== 1) {
      throw new Error(
        `patch ${patch.name}: spot "${spot.name}" found ${count} times in ${patch.file} ` +
          "(expected once): the library changed, update or drop the patch",
      );
    }
    text = text.replace(spot.find, () => spot.replace);
  }
  return text;
}

function patchPlugin(patches, applied) {
  // Several patches may name one file: applied in file-name order, each to the last's output.
  const byPath = new Map();
  for (const p of patches) {
    const key = path.resolve(p.target);
    byPath.set(key, [...(byPath.get(key) ?? []), p]);
  }
  return {
    name: "partystream-patches",
    setup(build) {
      build.onLoad({ filter: /\.m?js$/ }, async (args) => {
        const filePatches = byPath.get(path.resolve(args.path));
        if (!filePatches) return undefined;
        let contents = await readFile(args.path, "utf8");
        for (const patch of filePatches) {
          applied.add(patch);
          contents = applySpots(patch, contents);
        }
        return { contents, loader: "js" };
      });
    },
  };
}

async function main() {
  const patches = await loadPatches(option("--patches") ?? path.join(HERE, "patches"));
  const applied = new Set();
  const result = await esbuild.build({
    entryPoints: [path.join(HERE, "entry.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "eof",
    logLevel: "warning",
    write: false,
    outfile: OUT,
    plugins: [patchPlugin(patches, applied)],
  });
  const missing = patches.filter((p) => !applied.has(p)).map((p) => `${p.name} (${p.file})`);
  if (missing.length) throw new Error(`patches whose file is not in the bundle: ${missing}`);
  const bundle = result.outputFiles[0].contents;
  const patchList = [...new Set(patches.map((p) => p.name))].join(", ") || "none";
  if (process.argv.includes("--check")) {
    const committed = await readFile(OUT);
    if (Buffer.compare(Buffer.from(bundle), committed) !== 0) {
      throw new Error("static/vendor/sendspin.js differs from a fresh build: run build.sh");
    }
    console.log(`static/vendor/sendspin.js is up to date (patches: ${patchList})`);
    return;
  }
  await writeFile(OUT, bundle);
  console.log(`built static/vendor/sendspin.js (${bundle.length} bytes; patches: ${patchList})`);
}

main().catch((err) => {
  console.error(`build failed: ${err.message}`);
  process.exit(1);
});
