// Driving the cluster from a lesson's build: ordinary, recorded actions and
// the simulator run event by event until something holds. Nothing here
// depends on frame rates or real time, so a step rebuilt from scratch lands
// on the same point every time (Back, Continue and shared links rely on it).

export const c = (app) => app.cluster;

export const ids = (app) => Array.from({ length: c(app).node_count() }, (_, i) => i + 1);
export const others = (app, ...not) => ids(app).filter((i) => !not.includes(i));

// Processes events until pred() holds or maxUs of simulated time passed.
export function until(app, pred, maxUs = 5e6) {
  const end = c(app).now() + maxUs;
  while (!pred() && c(app).now() < end) {
    if (!c(app).step()) break;
  }
  app.refresh();
  return pred();
}

// Runs a stretch of simulated time.
export function run(app, us) {
  c(app).advance(us);
  app.refresh();
}

// The leader, once there is one (0 if none within maxUs).
export function leader(app, maxUs = 10e6) {
  until(app, () => c(app).leader() !== 0, maxUs);
  return c(app).leader();
}

export const roleOf = (app, id) => c(app).role(id);

export function put(app, node, key, value) {
  app.act({ op: 'client', node, req: { kind: 'put', key, value } });
}

export function get(app, node, key) {
  app.act({ op: 'client', node, req: { kind: 'get', key } });
}

// Every running node has applied key = value.
export function everywhere(app, key, value) {
  return ids(app).every((id) => c(app).role(id) === 'down' || c(app).value(id, key) === value);
}

// The term of each node's entry at index i (0: none), by node id - 1.
export function termsAt(app, i) {
  return JSON.parse(c(app).log_window(i, i)).map((l) => (l[0] ? l[0].t : 0));
}

// The client's latest answer to a request whose text starts with `text`
// (read from the cluster, so it can be used in an until() predicate).
export function answer(app, text, node) {
  const a = JSON.parse(c(app).state()).client.answers;
  for (let k = a.length - 1; k >= 0; k--) if (a[k].text.startsWith(text) && (!node || a[k].node === node)) return a[k];
  return null;
}

export const bugOn = (app, name) => !!(app.options.bugs && app.options.bugs[name]);
