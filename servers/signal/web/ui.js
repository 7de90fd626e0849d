// The page's building blocks: notices that belong to a moment, the banner for
// what persists, errors next to the field that caused them, tiles with labels.

export const $ = (id) => document.getElementById(id);

// How long a notice stays unless the next state replaces it first.
export const NOTICE_MS = { info: 6000, error: 10000 };

// One notice line at a time: replaced by the next, cleared when the state it
// described has passed (clear()), or gone after NOTICE_MS.
export class Notices {
  constructor() {
    this.box = $('notice');
    this.text = $('notice-text');
    this.timer = null;
    this.defaults = NOTICE_MS;
    this.ms = { ...NOTICE_MS };  // tests may lengthen them
    $('notice-close').addEventListener('click', () => this.clear());
  }

  show(text, isError = false) {
    clearTimeout(this.timer);
    this.text.textContent = text;
    this.box.className = isError ? 'error' : '';
    this.box.setAttribute('role', isError ? 'alert' : 'status');
    this.box.hidden = false;
    this.timer = setTimeout(() => this.clear(), isError ? this.ms.error : this.ms.info);
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = null;
    this.box.hidden = true;
    this.text.textContent = '';
  }
}

// A persistent line under the header: only for what lasts (offline, reconnecting).
export function banner(text, bad = false) {
  const box = $('banner');
  box.textContent = text || '';
  box.className = bad ? 'bad' : '';
  box.hidden = !text;
}

// An error shown next to what caused it; '' hides it.
export function fieldError(id, text) {
  const box = $(id);
  box.textContent = text || '';
  box.hidden = !text;
}

export function button(text, className, onClick, { disabled = false, title = '' } = {}) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = className;
  b.disabled = disabled;
  if (title) b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

function flag(className, text) {
  const span = document.createElement('span');
  span.className = `flag ${className}`;
  span.textContent = text;
  span.hidden = true;
  return span;
}

// <figure class="tile"> with a video and a caption: name, then "muted" and "camera off".
export function makeTile(name, role) {
  const tile = document.createElement('figure');
  tile.className = 'tile';
  tile.dataset.role = role;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  const caption = document.createElement('figcaption');
  const label = document.createElement('span');
  label.className = 'tile-name';
  label.textContent = name;
  caption.append(label, flag('muted', 'muted'), flag('camera-off', 'camera off'));
  tile.append(video, caption);
  tile.dataset.initial = initial(name);
  return tile;
}

// The name on the tile; its initial stands in for the picture while the camera is off.
export function setTileName(tile, name, person = name) {
  tile.querySelector('.tile-name').textContent = name;
  tile.dataset.initial = initial(person);
}

// state: {audio, video} as booleans (true = on); a missing key leaves that flag alone.
export function setTileFlags(tile, state) {
  if ('audio' in state) {
    const muted = !state.audio;
    tile.dataset.muted = String(muted);
    const f = tile.querySelector('.flag.muted');
    if (f) f.hidden = !muted;
  }
  if ('video' in state) {
    const off = !state.video;
    tile.dataset.cameraOff = String(off);
    const f = tile.querySelector('.flag.camera-off');
    if (f) f.hidden = !off;
  }
}

export function initial(name) {
  return (name || '?').charAt(0);
}
