import { defineConfig } from "vite";

// `base: "./"` keeps every asset URL relative, so the same build works at `/` (vite preview, any static host)
// and under `/demo/` when `livetoken serve --demo-dir examples/browser/dist` serves it same-origin.
export default defineConfig({
  base: "./",
  build: { target: "es2022", sourcemap: true },
  server: { host: "127.0.0.1", port: 5173 },
  preview: { host: "127.0.0.1", port: 4173 },
});
