// The watch page: a viewer of a broadcast (docs/broadcast.md), reached as `#watch/ROOM` (with
// `?region=R`, in the page's query or after the hash, for a viewer placed on an edge of its region).
// It joins the room (`room.join`, with `region` when given), publishes nothing (no camera or
// microphone is asked for) and offers receive sections only to the room's call server or its edge
// (sfu.js SfuLink with no stream). It shows the program full-size: the studio's program
// (publisher "program"), else the room owner's camera, else the first camera published, with its
// audio. The quality menu: "Auto" lifts any limit, so the call server's allocator picks the layer
// or transcoded rung by this viewer's bandwidth estimate; a rung (one per height of the track's
// layers, from the slot) sends `room.quality` with that maximum height. The line under the picture says what is received now.

import { SfuLink, compareMids } from './sfu.js';
import { summarize, formatKbps } from './stats.js';
import { PROGRAM } from './studio.js';
import { $ } from './ui.js';

// The menu's rungs until the call server says the track's own (a slot's `heights`, known from the
// layers' key frames): the usual ladders, a 1280x720 camera's three simulcast layers and the
// transcoder's 360p + 180p renditions (docs/transcode.md). The call server sends the highest layer at
// most that high.
export const QUALITY_RUNGS = [720, 360, 180];
const WATCH_OTHERS = 2;  // receive sections for two publishers: the program, or a small room's cameras
const STATS_INTERVAL_MS = 1000;
const CONNECT_TIMEOUT_MS = 15000;  // a connection not up by then is replaced (as SfuRoom does)

// {room, region} from the page's hash (`#watch/ROOM`, `#watch/ROOM?region=eu`) and query
// (`?region=eu`, the hash's winning); null when the hash is not a watch route.
export function parseWatchRoute(hash, search) {
  const match = /^#watch\/([^?]+)(?:\?(.*))?$/.exec(hash || '');
  if (!match) return null;
  const room = decodeURIComponent(match[1]);
  const region = new URLSearchParams(match[2] || '').get('region') || new URLSearchParams(search || '').get('region');
  return { room, region: region || null };
}

// The publisher whose camera the page shows, from the slots' publishers: the program, else the
// room's owner, else the first.
export function pickProgram(publishers, ownerSessions) {
  if (publishers.includes(PROGRAM)) return PROGRAM;
  return publishers.find((p) => ownerSessions.includes(p)) || publishers[0] || null;
}

export class WatchView {
  constructor(app) {
    this.app = app;
    this.room = null;  // {id, region, owner, names, callServer, link, slots, shown, ...}
    this.setRungs(QUALITY_RUNGS);
    $('watch-quality').addEventListener('change', () => this.sendQuality());
    $('watch-leave').addEventListener('click', () => this.leave());
    this.timer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
  }

  get active() {
    return Boolean(this.room);
  }

  listen(on) {
    const mine = (fn) => (p) => { if (this.room && this.room.id === p.room_id) fn.call(this, p); };
    on('room.media', mine(this.onMedia));
    on('room.slots', mine((p) => this.setSlots(p.slots)));
    on('room.topology', mine((p) => { if (p.mode === 'sfu' && !this.room.link) this.connect(p.call_server); }));
    on('room.moved', mine((p) => this.connect(p.call_server)));
    on('room.joined', mine((p) => this.room.names.set(p.session_id, p.user)));
  }

  // Join room `id` as a viewer; the view replaces the idle area.
  async start(id, region) {
    const app = this.app;
    const room = { id, region, owner: null, names: new Map(), callServer: null, link: null, slots: [],
      shown: null, requested: null, watchdog: null, stats: null };
    this.room = room;
    app.notices.clear();
    if (app.rooms.invitation && app.rooms.invitation.room_id === id) {  // the invitation is being taken up here
      app.rooms.invitation = null;
      $('room-invite').hidden = true;
    }
    this.show(`Joining ${id}\u2026`, 'joining');
    let ack;
    try {
      ack = await app.client.request('room.join', { room_id: id, ...(region ? { region } : {}) });
    } catch (err) {
      if (this.room === room) this.close();
      return app.fail(err);
    }
    if (this.room !== room) return;
    room.owner = ack.owner;
    for (const p of ack.participants) room.names.set(p.session_id, p.user);
    $('watch-edge').textContent = ack.edge ? `Watching through ${ack.edge.name} (region ${ack.edge.region}).` : '';
    $('watch-edge').hidden = !ack.edge;
    if (ack.topology === 'sfu') this.connect(ack.call_server);
    else this.show('Waiting for the broadcast to go through the call server\u2026', 'waiting');
  }

  // A new receive-only connection to the call server (null: wait for room.moved).
  connect(callServer) {
    const room = this.room;
    if (room.link) room.link.close();
    clearTimeout(room.watchdog);
    room.link = null;
    room.slots = [];
    room.requested = null;
    room.callServer = callServer;
    if (!callServer) return this.show('Waiting for a call server\u2026', 'waiting');
    this.show(`Connecting to ${callServer}\u2026`, 'connecting');
    const link = new SfuLink({
      iceServers: this.app.iceServers,
      relayOnly: $('relay-only').checked,
      stream: null,
      others: WATCH_OTHERS,
      offer: (sdp) => this.app.client.request('room.media', { room_id: room.id, sdp }),
      onState: (state) => {
        if (room.link !== link) return;
        if (state === 'connected') clearTimeout(room.watchdog);
        if (state === 'failed') this.connect(callServer);
        else this.show(state === 'connected' ? `Watching ${room.owner}'s broadcast` : `Connecting to ${callServer}\u2026`, state);
      },
      onError: (err) => this.app.notify(`Media negotiation with the call server failed: ${err.message || err.reason}`, true),
    });
    room.link = link;
    link.start();
    room.watchdog = setTimeout(() => { if (room.link === link && this.room === room) this.connect(callServer); },
      CONNECT_TIMEOUT_MS);
  }

  async onMedia(p) {
    const room = this.room;
    const link = room.link;
    if (!link) return;
    if (p.error) return this.app.notify(`The call server refused the connection: ${p.error}`, true);
    if (!link.awaitingAnswer) return;
    room.slots = p.slots || [];  // first: a room.slots that comes while the answer is applied is newer
    if (await link.handleAnswer(p.sdp) && this.room === room) this.setSlots(room.slots);
  }

  // The program's camera and audio from the slots into the <video>; the quality asked again when
  // what is shown changed (a new connection or another track: the call server knows no limit for it).
  setSlots(slots) {
    const room = this.room;
    room.slots = slots || [];
    const filled = room.slots.filter((s) => s.publisher);
    const owners = [...room.names].filter(([, user]) => user === room.owner).map(([sessionId]) => sessionId);
    const publisher = pickProgram([...new Set(filled.map((s) => String(s.publisher)))], owners);
    const mine = filled.filter((s) => String(s.publisher) === publisher);
    const video = mine.filter((s) => s.kind === 'video').sort((a, b) => compareMids(a.track, b.track))[0];
    const audio = mine.find((s) => s.kind === 'audio');
    room.shown = video ? { publisher, track: String(video.track), mid: String(video.mid) } : null;
    this.setRungs(video && video.heights && video.heights.length ? video.heights : QUALITY_RUNGS);
    const tracks = room.link ? [video, audio].filter(Boolean).map((s) => room.link.track(String(s.mid))).filter(Boolean) : [];
    const key = tracks.map((t) => t.id).join(' ');
    const element = $('watch-video');
    if (element.dataset.tracks !== key) {
      element.dataset.tracks = key;
      element.srcObject = tracks.length ? new MediaStream(tracks) : null;
    }
    $('watch-name').textContent = publisher === PROGRAM ? 'Program' : room.names.get(publisher) || 'Live';
    this.sendQuality();
  }

  // The menu: Auto, then one entry per rung, highest first; the choice in force stays offered.
  setRungs(heights) {
    const menu = $('watch-quality');
    const chosen = menu.value;
    const rungs = [...new Set([...heights.map(Number), ...(chosen ? [Number(chosen)] : [])])].sort((a, b) => b - a);
    const key = rungs.join(' ');
    if (menu.dataset.rungs === key) return;
    menu.dataset.rungs = key;
    const auto = document.createElement('option');
    auto.value = '';
    auto.textContent = 'Auto';
    menu.replaceChildren(auto, ...rungs.map((height) => {
      const option = document.createElement('option');
      option.value = String(height);
      option.textContent = `${height}p`;
      return option;
    }));
    menu.value = chosen;
  }

  // The menu's choice for the track shown: room.quality with that height, or none (Auto: no limit).
  sendQuality() {
    const room = this.room;
    const shown = room && room.shown;
    const link = room && room.link;
    if (!shown || !link || link.awaitingAnswer || link.pc.remoteDescription === null) return;
    const value = $('watch-quality').value;
    const key = `${shown.publisher} ${shown.track} ${value}`;
    if (room.requested === key) return;
    room.requested = key;
    const payload = { room_id: room.id, publisher: shown.publisher, track: shown.track };
    if (value) payload.max_height = Number(value);
    $('watch').dataset.quality = value || 'auto';
    this.app.client.request('room.quality', payload)
      .catch((err) => { if (this.room === room && room.requested === key) room.requested = null; this.app.fail(err); });
  }

  // Once a second: what is received of the program ("1280x720 . VP8 30 fps . 1450 kbit/s").
  async tick() {
    const room = this.room;
    const link = room && room.link;
    if (!link || !room.shown || link.pc.connectionState === 'closed') return;
    const summary = await summarize(link.pc, room.stats && room.stats.link === link ? room.stats : null);
    if (this.room !== room || room.link !== link) return;
    summary.link = link;
    room.stats = summary;
    const row = summary.tracks.find((r) => r.direction === 'in' && r.mid === room.shown.mid);
    const line = $('watch-received');
    const bitrate = summary.bitrateIn;
    line.dataset.height = row && row.height ? String(row.height) : '';
    line.textContent = row && row.width
      ? `Receiving ${row.width}\u00d7${row.height} \u00b7 ${row.codec} ${Math.round(row.fps)} fps \u00b7 ${formatKbps(bitrate)}`
      : 'No picture yet';
  }

  show(text, state) {
    $('watch').hidden = false;
    $('watch').dataset.state = state;
    $('watch-status').textContent = text;
    this.app.refresh();
  }

  // Leave the room (the Leave button, a hash that is no longer a watch route, logging out).
  async leave() {
    const room = this.room;
    if (!room) return;
    this.close();
    if (location.hash.startsWith('#watch/')) history.replaceState(null, '', location.pathname + location.search);
    try {
      await this.app.client.request('room.leave', { room_id: room.id });
    } catch (err) {
      if (err.code !== 404) this.app.fail(err);
    }
  }

  close() {
    const room = this.room;
    this.room = null;
    clearTimeout(room.watchdog);
    if (room.link) room.link.close();
    const element = $('watch-video');
    element.srcObject = null;
    delete element.dataset.tracks;
    $('watch').hidden = true;
    $('watch-received').textContent = '';
    $('watch-quality').value = '';
    this.setRungs(QUALITY_RUNGS);
    delete $('watch').dataset.quality;
    this.app.refresh();
  }
}
