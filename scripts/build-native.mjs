// Builds native/ort_run.cc (a Node-API binding to ONNX Runtime's C API; see that file) into
// native/build/ort_run.node, with the system's C++ compiler and the running Node's headers. Run by npm's
// postinstall. Optional: without a compiler (or on a platform other than Linux) imagen-ts runs every graph
// through onnxruntime-node instead (the benchmark says which one ran).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nativeSourcesHash } from "./native-sources.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "native", "ort_run.cc");
const out = join(root, "native", "build", "ort_run.node");
const headers = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node", "/usr/local/include/node"]
  .find((d) => existsSync(join(d, "node_api.h")));
const compiler = process.env.CXX || "g++";

function skip(reason) {
  rmSync(out, { force: true }); // never leave an older build to be loaded against newer code
  rmSync(`${out}.sha256`, { force: true });
  rmSync(`${out}.build`, { force: true });
  console.warn(`imagen-ts: native ONNX Runtime binding not built (${reason}); graphs run through onnxruntime-node instead, without imagen-ts' fused kernels (training steps about 15% slower)`);
  process.exit(0);
}

if (process.platform !== "linux") skip(`platform ${process.platform}`);
if (!headers) skip("Node's headers (node_api.h) not found");
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const flags = ["-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wno-unused-function",
  `-I${headers}`, "-DNODE_GYP_MODULE_NAME=ort_run"];
const args = [...flags, source, "-o", tmp, "-ldl"];
// What the build depends on besides the sources: the compiler and its flags, Node's ABI, and the CPU (-march=native).
// An existing build made from the same is kept: `npx imagen` installs the project into npm's cache on its first
// run, which runs this script again (a 12 s compile before the first image). IMAGEN_REBUILD_NATIVE=1 forces it.
const cpu = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8").split("\n").filter((l) => /^(model name|flags)\s*:/.test(l)).slice(0, 2).join("\n") : "";
const stamp = createHash("sha256").update(JSON.stringify([nativeSourcesHash(dirname(source)), compiler, flags, process.versions.modules, cpu])).digest("hex");
const stampFile = `${out}.build`;
if (process.env.IMAGEN_REBUILD_NATIVE !== "1" && existsSync(out) && existsSync(`${out}.sha256`) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) {
  process.exit(0);
}
const r = spawnSync(compiler, args, { stdio: ["ignore", "inherit", "inherit"] });
if (r.error) skip(`${compiler}: ${r.error.message}`);
if (r.status !== 0) skip(`${compiler} exited with ${r.status}`);
renameSync(tmp, out);
// The sources' hash beside the build: src/runtime/native.ts loads the binding only while they still match.
writeFileSync(`${out}.sha256`, nativeSourcesHash(dirname(source)));
writeFileSync(stampFile, stamp);
