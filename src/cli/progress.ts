// Progress for long work: a bar on a terminal, JSON lines otherwise (or with --json).
export function progressReporter(json: boolean): (p: Record<string, number | string>) => void {
  const tty = process.stderr.isTTY && !json;
  return (p) => {
    if (!tty) {
      process.stderr.write(JSON.stringify({ event: "progress", ...p }) + "\n");
      return;
    }
    const step = Number(p.step), steps = Number(p.steps);
    const width = 30, filled = Math.round((width * step) / steps);
    const label = p.stage !== undefined ? `stage ${p.stage} ` : "";
    process.stderr.write(`\r${label}[${"#".repeat(filled)}${".".repeat(width - filled)}] ${step}/${steps}${step === steps ? "\n" : ""}`);
  };
}
