// Shows the Simulator | Live cluster toggle when the page is served by
// `raftkv cluster`, whose server answers /cluster.json with its nodes. A
// plain static server (the tests', a copy of web-demo/) serves the file
// web-demo/cluster.json instead, which lists none (so no 404 is logged):
// the toggle stays hidden, as there are no real nodes to show.

async function showToggle() {
  try {
    const r = await fetch('/cluster.json', { cache: 'no-store' });
    if (!r.ok) return;
    const info = await r.json();
    if (Array.isArray(info.nodes) && info.nodes.length) document.getElementById('mode-toggle').hidden = false;
  } catch {
    // No supervisor: the simulator alone.
  }
}

showToggle();
