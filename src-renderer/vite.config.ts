// Builds the wizard into dist/renderer: served by the Electron protocol handler and the web host.
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs work from app://studio/ and from the web host alike.
  base: './',
  plugins: [svelte()],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Inlined assets would be data: scripts/styles, which the Content-Security-Policy forbids.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1024,
  },
});
