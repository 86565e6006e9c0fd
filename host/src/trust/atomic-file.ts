// Crash-safe file replacement: write a temporary file in the same directory, fsync it, then rename it over
// the target (or hard-link it, when overwriting is not allowed) and fsync the directory. A reader sees either
// the old file or the new one, never a prefix; on any error the temporary file is removed.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o644). Applied with fchmod, so the umask cannot widen or narrow it. */
  readonly mode?: number;
  /** When false, fail with EEXIST if the target exists (default true). */
  readonly overwrite?: boolean;
}

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
    created = true;
    try {
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.overwrite === false) {
      // link() fails with EEXIST instead of replacing, which rename() would do silently.
      await link(tmp, path);
      await unlink(tmp);
    } else {
      await rename(tmp, path);
    }
    created = false;
    await syncDirectory(dir);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory; the rename itself has already happened.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}
