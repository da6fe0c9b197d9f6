// Bundles the worker's process entry into one file, over tsc's output of it:
// dist/cli/worker-entry.js (src/cli/worker-entry.ts says why).
//
// Each module keeps its own import.meta.url, rewritten relative to the
// bundle's (the package may be installed anywhere): paths relative to a
// module (os/node/spawn.ts's entry, a registry's url, which the parent names
// the child's program by) mean in the bundle what they mean in dist/. Packages stay imports: the bundle resolves them from
// dist/cli/ as the module it replaces did.
import { readFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const out = fileURLToPath(new URL('../dist/cli/worker-entry.js', import.meta.url));

const ownUrls = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const own = `new URL(${JSON.stringify(relative(dirname(out), args.path))}, import.meta.url).href`;
      return { contents: args.path === out ? text : text.replaceAll('import.meta.url', own), loader: 'js' };
    });
  },
};

await build({
  entryPoints: [out],
  outfile: out,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  plugins: [ownUrls],
  logLevel: 'warning',
  legalComments: 'none',
});
