// Svelte options for the wizard: runes everywhere (Svelte 5), CSS extracted to a file (the CSP allows no inline styles).
export default {
  compilerOptions: { runes: true },
};
