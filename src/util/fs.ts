// File-system helpers shared by every crash-safe writer.
import { open } from "node:fs/promises";

/** fsyncs a folder so renames inside it are durable; platforms that cannot fsync a folder are not an error. */
export async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, "r").catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync().catch(() => undefined);
  } finally {
    await handle.close();
  }
}
