// Loads the wasm module: ./pkg (the normal build) or ./pkg-bugs (raft-core with
// its deliberate bugs available, for test mode's "broken build").

export async function loadWasm(which = 'pkg') {
  const mod = await import(`../${which}/host_wasm.js`);
  await mod.default();
  return mod;
}

export async function bugsBuildAvailable() {
  try {
    const r = await fetch(new URL('../pkg-bugs/host_wasm.js', import.meta.url), { method: 'HEAD' });
    return r.ok;
  } catch {
    return false;
  }
}
