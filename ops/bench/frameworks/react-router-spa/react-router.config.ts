import type { Config } from "@react-router/dev/config";

export default {
  // SPA mode: no server rendering at runtime; `react-router build` writes build/client/.
  ssr: false,
} satisfies Config;
