// File-system helpers shared by every crash-safe writer.
import { open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

/** Writes `bytes` to a new file (flag "wx": it must not exist; "w": replace) and fsyncs it before closing. */
export async function writeSynced(path: string, bytes: Uint8Array, flag: "w" | "wx" = "wx"): Promise<void> {
  const file = await open(path, flag);
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

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

/** Replaces `path` with `text` crash-safely: a synced temp file beside it, renamed over it. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    await writeSynced(temp, new TextEncoder().encode(text), "w");
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncFolder(dirname(path));
}
