// The recordings of calls the user took part in: the list that `recording.list`
// answers, fetched at login and again when a `recording.ready` arrives. Each
// entry plays in its own <video>: the whole call when a composite was made,
// else one participant's file, with a button per file to switch. The file
// URLs are this origin's and carry a short-lived access token (CSP media-src
// 'self'); a player whose token ran out fetches the list again.

import { $, button } from './ui.js';

// "3:05" for 185 s; "1:02:03" past an hour.
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const two = (n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

// What a recording can be played as: the composite first, then each participant's file.
function sources(recording) {
  const out = [];
  const composite = recording.composite;
  if (composite && composite.url) out.push({ label: 'Whole call', url: composite.url, name: composite.name });
  for (const f of recording.files || []) {
    if (f.url) out.push({ label: f.user || f.participant, url: f.url, name: f.name });
  }
  return out;
}

export class RecordingsView {
  constructor(app) {
    this.app = app;
    this.recordings = [];
    this.chosen = new Map();  // location -> the file name being played, kept across refreshes
    this.items = new Map();   // location -> its <li>, kept across refreshes so playback goes on
    this.retried = new Set(); // file names whose URL was renewed once after an error
  }

  listen(on) {
    on('recording.ready', () => {
      this.app.notify('A recording of a call you took part in is ready: see Recordings.');
      this.refresh();
    });
  }

  async refresh() {
    if (!this.app.client) return;
    try {
      const list = await this.app.client.request('recording.list');
      this.recordings = list.recordings;
      this.render();
    } catch (err) {
      this.app.fail(err);
    }
  }

  // Logged out: nothing of this user's stays on the page.
  clear() {
    this.recordings = [];
    this.chosen.clear();
    this.items.clear();
    this.render();
  }

  render() {
    const ul = $('recordings');
    const items = new Map();
    for (const r of this.recordings) items.set(r.location, this.items.get(r.location) || this.entry(r));
    this.items = items;
    ul.replaceChildren(...items.values());
    $('recordings-empty').hidden = this.recordings.length > 0;
  }

  entry(recording) {
    const li = document.createElement('li');
    li.className = 'recording';
    li.dataset.room = recording.room_id;
    const title = document.createElement('p');
    title.className = 'recording-title';
    const when = new Date(recording.started * 1000);
    const people = (recording.files || []).map((f) => f.user || f.participant).join(', ');
    title.textContent = `${when.toLocaleString()}` +
      (recording.duration != null ? ` \u00b7 ${formatDuration(recording.duration)}` : '') +
      (people ? ` \u00b7 ${people}` : '');
    li.append(title);
    const playable = sources(recording);
    if (!playable.length) {
      const none = document.createElement('p');
      none.className = 'hint';
      none.textContent = 'This recording is not stored where this page can play it.';
      li.append(none);
      return li;
    }
    const video = document.createElement('video');
    video.controls = true;
    video.preload = 'none';  // nothing fetched until played: a long list costs no requests
    video.playsInline = true;
    const pick = this.chosen.get(recording.location);
    const current = playable.find((s) => s.name === pick) || playable[0];
    video.src = current.url;
    video.dataset.name = current.name;
    video.addEventListener('error', () => this.expired(recording.location, current.name));
    const choices = document.createElement('div');
    choices.className = 'row-actions';
    choices.setAttribute('role', 'group');
    choices.setAttribute('aria-label', 'Play');
    if (playable.length > 1) {
      for (const s of playable) {
        const b = button(s.label, 'recording-source', () => this.choose(recording, s.name));
        b.dataset.name = s.name;
        b.setAttribute('aria-pressed', String(s === current));
        choices.append(b);
      }
    }
    li.append(video, choices);
    return li;
  }

  // Play another file of this recording (its entry is built again, the others are left playing).
  choose(recording, name) {
    this.chosen.set(recording.location, name);
    const latest = this.recordings.find((r) => r.location === recording.location) || recording;  // fresh URLs
    const fresh = this.entry(latest);
    const old = this.items.get(recording.location);
    this.items.set(recording.location, fresh);
    if (old) old.replaceWith(fresh);
  }

  // A file that would not load: its URL's token may have run out, so ask once for fresh URLs.
  expired(location, name) {
    if (this.retried.has(name)) return;
    this.retried.add(name);
    this.items.delete(location);
    this.refresh();
  }
}
