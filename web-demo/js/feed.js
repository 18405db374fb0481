// The event feed: the driver's sentences, newest first. Minor lines (role
// changes, followers learning commits, …) show only with "details". A run of
// commits is one line that the driver rewrites as it grows: a line naming a
// run replaces the one of that run shown before.

import { $, esc } from './util.js';

const KEEP = 400;

export class Feed {
  constructor(app) {
    this.app = app;
    const box = $('#feed-minor');
    const apply = () => $('#feed').classList.toggle('only-major', !box.checked);
    box.addEventListener('change', apply);
    apply();
  }

  clear() {
    $('#feed').textContent = '';
  }

  draw(s) {
    if (s.feed_last === this.app.feedLast) return;
    const items = JSON.parse(this.app.cluster.feed(this.app.feedLast));
    this.app.feedLast = s.feed_last;
    const ol = $('#feed');
    for (const f of items) {
      const run = f.replaces || f.id;
      if (f.replaces) ol.querySelector(`li[data-run="${f.replaces}"]`)?.remove();
      const li = document.createElement('li');
      li.className = `k-${f.kind}${f.major ? '' : ' minor'}${/committed entry is lost/.test(f.text) ? ' lost' : ''}`;
      li.dataset.run = run;
      li.dataset.id = f.id;
      li.innerHTML = `<span class="t">${(f.t / 1e6).toFixed(3)}</span><span>${esc(f.text)}</span>`;
      ol.prepend(li);
    }
    while (ol.children.length > KEEP) ol.lastChild.remove();
  }
}
