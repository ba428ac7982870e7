// How busy the machine is with other people's work (Linux /proc): the CPU that processes other than this
// one and its waited-for children used over an interval, in cores. Timings taken beside such load are not
// comparable (2-thread OpenMP / ORT pools slow down 2.5-10x when another process holds a core).
import { readFileSync } from "node:fs";

const ticksPerSecond = 100; // USER_HZ, 100 on every Linux configuration in use

function totalBusyTicks(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return user + nice + system + irq + softirq + (steal ?? 0);
}

/** utime + stime + cutime + cstime of this process (children count once waited for, as spawnSync does). */
function ownTicks(): number {
  const s = readFileSync("/proc/self/stat", "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ").map(Number); // f[0] is field 3 (state)
  return f[11] + f[12] + f[13] + f[14];
}

export const loadMeterAvailable = (() => {
  try {
    totalBusyTicks();
    ownTicks();
    return true;
  } catch {
    return false;
  }
})();

/** Starts measuring; the returned function gives the average number of cores others used since. */
export function startLoadMeter(): () => number {
  if (!loadMeterAvailable) return () => NaN;
  const t0 = performance.now();
  const [busy0, own0] = [totalBusyTicks(), ownTicks()];
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const others = (totalBusyTicks() - busy0 - (ownTicks() - own0)) / ticksPerSecond;
    return wall > 0 ? Math.max(0, others / wall) : NaN;
  };
}

/** Waits (up to `maxSeconds`) until others use less than `threshold` cores over one second; returns their last load. */
export async function waitForQuiet(maxSeconds: number, threshold: number): Promise<number> {
  const deadline = performance.now() + maxSeconds * 1000;
  for (;;) {
    const stop = startLoadMeter();
    await new Promise((r) => setTimeout(r, 1000));
    const load = stop();
    if (!(load >= threshold) || performance.now() >= deadline) return load;
  }
}
