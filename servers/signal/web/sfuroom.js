// A group call on the call server: the one SfuLink, a camera tile per other
// participant (with their audio) and a screen tile while they share, filled
// from what `room.slots` says each receive section carries; the active
// speaker from `room.speaker`; a stats line per tile (layer received,
// bitrate, loss, round trip). `room.moved`: a new link to the new server,
// the same tiles. Before the first link the camera is asked for up to
// 1280x720 (media.js enlargeCamera) so that it can go as three simulcast
// layers; each tile tells the call server how large it shows its track
// (`room.quality`), so that no layer larger than that is forwarded to it.
// A connection that does not come up (no answer, ICE or DTLS stuck) or
// fails is replaced by a new one, as a moved room's is.

import { SfuLink, MAX_OTHERS, compareMids } from './sfu.js';
import { summarize, formatKbps, formatMs } from './stats.js';
import { enlargeCamera } from './media.js';
import { $, makeTile } from './ui.js';

const STATS_INTERVAL_MS = 1000;
const SCREEN_IDLE_MS = 2000;  // a screen tile goes when no frame was decoded for this long
const QUALITY_SETTLE_MS = 500;  // a tile's size must hold this long (a reflow, a window drag) before room.quality
// A connection to the call server that is not up this long after it started (no answer came, or ICE or
// DTLS never completed), or that failed, is replaced by a new one (a new offer is a new connection to the
// call server). Generous: five browsers and the call server on two shared cores connect in 1-4 s.
const CONNECT_TIMEOUT_MS = 15000;
const CAMERA_TIMEOUT_MS = 5000;  // the camera's enlargement may take this long before the call goes on without it
const RETRY_BACKOFF_MAX_MS = 60000;  // the wait before each further attempt doubles up to this

// The largest picture height worth sending to a tile shown `cssHeight` CSS pixels high: below
// twice that (a dense screen has two device pixels per CSS pixel, and a layer somewhat larger
// than the tile still looks sharper when scaled down), so a layer of exactly twice is left out.
export function wantedHeight(cssHeight) {
  return Math.max(1, Math.min(4320, Math.ceil(2 * cssHeight) - 1));
}

export class SfuRoom {
  // room: RoomView's room ({id, stream, relayOnly, members: Map session id -> user});
  // app: the App (client, iceServers, notify); onChange(): the status line changed.
  constructor(app, room, callServer, onChange) {
    this.app = app;
    this.room = room;
    this.callServer = callServer;
    this.onChange = onChange;
    this.link = null;
    this.state = 'new';
    this.slots = new Map();    // mid -> {kind, publisher, track}
    this.members = new Map();  // session id -> {user, camera, screen, mids, tracks, screenSeen}
    this.stats = null;
    this.showStats = false;
    this.generation = 0;       // connect() calls: a slower one that was overtaken gives up
    this.camera = null;        // the camera enlarged for the call server (a promise, once per room)
    this.requested = new Map();  // `publisher track` -> max_height sent on the current link
    this.qualityTimer = null;
    this.resizes = window.ResizeObserver ? new ResizeObserver(() => this.qualitySoon()) : null;
    this.watchdog = null;      // replaces a connection that does not come up (CONNECT_TIMEOUT_MS)
    this.retries = [];         // why each replaced connection was replaced ('no answer', 'ice checking', ...)
    this.retryDelay = CONNECT_TIMEOUT_MS;
    for (const [sessionId, user] of room.members) this.addMember(sessionId, user);
    this.timer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
  }

  // A new peer connection to the room's call server (none: wait for room.moved).
  async connect() {
    if (this.link) this.link.close();
    this.link = null;
    clearTimeout(this.watchdog);
    this.slots = new Map();
    this.requested = new Map();
    this.state = this.callServer ? 'connecting' : 'waiting';
    this.onChange();
    if (!this.callServer) return;
    const generation = ++this.generation;
    if (!this.camera) this.camera = this.enlargeCamera();
    await this.camera;
    if (generation !== this.generation) return;  // moved or closed meanwhile
    const room = this.room;
    const link = new SfuLink({
      iceServers: this.app.iceServers,
      relayOnly: room.relayOnly,
      stream: room.stream,
      others: MAX_OTHERS,
      offer: (sdp) => this.app.client.request('room.media', { room_id: room.id, sdp }),
      onState: (state) => {
        if (this.link !== link) return;
        this.state = state;
        this.onChange();
        if (state === 'connected') {
          clearTimeout(this.watchdog);
          this.retryDelay = CONNECT_TIMEOUT_MS;  // the backoff starts again for a later failure
        } else if (state === 'failed') {
          this.retry(link, 'failed');
        }
      },
      onError: (err) => this.app.notify(`Media negotiation with the call server failed: ${err.message || err.reason}`, true),
    });
    this.link = link;
    if (room.screen) link.setScreen(room.screen.getVideoTracks()[0]).catch((err) => this.app.notify(err.message, true));
    link.start();
    this.watchdog = setTimeout(() => this.retry(link, this.stalled(link)), this.retryDelay);
  }

  // Where a connection that is not up stands: 'no answer', or the ICE or DTLS state it is stuck in.
  stalled(link) {
    if (link.awaitingAnswer || link.pc.remoteDescription === null) return 'no answer';
    const ice = link.pc.iceConnectionState;
    if (ice !== 'connected' && ice !== 'completed') return `ice ${ice}`;
    return `dtls (${link.pc.connectionState})`;
  }

  // A new connection in place of `link` (if it is still the current one), given twice as long to come up.
  retry(link, why) {
    if (this.link !== link || this.callServer === null) return;
    this.retries.push(why);
    console.warn(`call server connection not up (${why}): connecting again`);
    this.retryDelay = Math.min(RETRY_BACKOFF_MAX_MS, 2 * this.retryDelay);
    this.connect();
  }

  // The camera at the size simulcast needs (the offer's layers follow the capture); on failure
  // the call goes on with the camera as it was.
  async enlargeCamera() {
    let timer;
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the camera in ${CAMERA_TIMEOUT_MS} ms`)), CAMERA_TIMEOUT_MS);
    });
    try {
      await Promise.race([enlargeCamera(this.room.stream, this.app.settingsCaps()), timeout]);
    } catch (err) {
      console.warn('the camera stays at its size:', err);
    } finally {
      clearTimeout(timer);
    }
  }

  moved(callServer) {
    this.callServer = callServer;
    this.connect();
  }

  async onMedia(p) {
    if (!this.link) return;
    if (p.error) {
      this.app.notify(`The call server refused the connection: ${p.error}`, true);
      return;
    }
    if (!this.link.awaitingAnswer) return;
    // The slots first: a room.slots that comes while the answer is being applied is newer.
    this.slots = new Map((p.slots || []).map((s) => [String(s.mid), s]));
    if (await this.link.handleAnswer(p.sdp)) {
      this.requested = new Map();  // a new connection: the call server knows no sizes yet
      this.place();
    }
  }

  setSlots(slots) {
    this.slots = new Map((slots || []).map((s) => [String(s.mid), s]));
    this.place();
  }

  // The call server's active speaker (null: nobody) outlined: another's camera tile, or ours.
  onSpeaker(p) {
    $('tile-self').classList.toggle('speaking', p.session_id === this.app.sessionId);
    for (const [sessionId, member] of this.members) {
      member.camera.classList.toggle('speaking', sessionId === p.session_id);
    }
  }

  addMember(sessionId, user) {
    if (this.members.has(sessionId)) return;
    const camera = makeTile(user, 'camera');
    const screen = makeTile(`${user}'s screen`, 'screen');
    screen.hidden = true;
    for (const tile of [camera, screen]) {
      tile.dataset.session = sessionId;
      tile.dataset.user = user;
      const line = document.createElement('p');
      line.className = 'tile-stats';
      line.hidden = !this.showStats;
      tile.append(line);
      $('tiles').append(tile);
      if (this.resizes) this.resizes.observe(tile.querySelector('video'));
    }
    this.members.set(sessionId, { user, camera, screen, mids: {}, tracks: {}, screenSeen: 0 });
    this.place();
  }

  removeMember(sessionId) {
    const member = this.members.get(sessionId);
    if (!member) return;
    if (this.resizes) for (const tile of [member.camera, member.screen]) this.resizes.unobserve(tile.querySelector('video'));
    member.camera.remove();
    member.screen.remove();
    this.members.delete(sessionId);
  }

  // Each participant's camera (the first video section it publishes), screen (a later one)
  // and microphone, from the slots; tiles get a stream of those tracks when they change.
  place() {
    const published = new Map();
    for (const [mid, s] of this.slots) {
      if (!s.publisher) continue;
      const entry = published.get(s.publisher) || { video: [], audio: null };
      if (s.kind === 'video') entry.video.push([s.track, mid]);
      else entry.audio = mid;
      published.set(s.publisher, entry);
    }
    for (const [sessionId, member] of this.members) {
      const entry = published.get(sessionId) || { video: [], audio: null };
      entry.video.sort((a, b) => compareMids(a[0], b[0]));
      member.mids = {
        camera: entry.video.length ? entry.video[0][1] : null,
        screen: entry.video.length > 1 ? entry.video[1][1] : null,
        audio: entry.audio,
      };
      member.tracks = {  // the publisher's own mids, as room.quality names them
        camera: entry.video.length ? entry.video[0][0] : null,
        screen: entry.video.length > 1 ? entry.video[1][0] : null,
      };
      this.show(member.camera, [member.mids.camera, member.mids.audio]);
      this.show(member.screen, [member.mids.screen]);
    }
    this.qualitySoon();
  }

  qualitySoon() {
    clearTimeout(this.qualityTimer);
    this.qualityTimer = setTimeout(() => this.sendQuality(), QUALITY_SETTLE_MS);
  }

  // room.quality for each shown tile whose wanted height changed since the last on this link
  // (a hidden tile's last request stands: it shows nothing to size by).
  sendQuality() {
    const link = this.link;
    if (!link || link.awaitingAnswer || link.pc.remoteDescription === null) return;
    for (const [sessionId, member] of this.members) {
      for (const [tile, track] of [[member.camera, member.tracks.camera], [member.screen, member.tracks.screen]]) {
        if (track == null) continue;
        const shown = tile.querySelector('video').getBoundingClientRect().height;
        if (!(shown > 0)) continue;
        const maxHeight = wantedHeight(shown);
        const key = `${sessionId} ${track}`;
        if (this.requested.get(key) === maxHeight) continue;
        this.requested.set(key, maxHeight);
        this.app.client.request('room.quality', { room_id: this.room.id, publisher: sessionId, track, max_height: maxHeight })
          .catch(() => { if (this.link === link) this.requested.delete(key); });
      }
    }
  }

  show(tile, mids) {
    const tracks = this.link ? mids.filter(Boolean).map((mid) => this.link.track(mid)).filter(Boolean) : [];
    const key = tracks.map((t) => t.id).join(' ');
    if (tile.dataset.tracks === key) return;
    tile.dataset.tracks = key;
    tile.dataset.mids = mids.filter(Boolean).join(' ');
    tile.querySelector('video').srcObject = tracks.length ? new MediaStream(tracks) : null;
  }

  // Once a second: the tiles' stats lines, and screen tiles shown while frames arrive.
  async tick() {
    const link = this.link;
    if (!link || link.pc.connectionState === 'closed') return;
    const summary = await summarize(link.pc, this.stats && this.stats.link === link ? this.stats : null);
    if (this.link !== link) return;
    summary.link = link;
    const before = this.stats && this.stats.link === link ? this.stats : null;
    this.stats = summary;
    const rows = new Map();
    for (const row of summary.tracks) if (row.direction === 'in') rows.set(row.mid, row);
    const frames = (s, mid) => {
      const v = s && s.video.find((x) => x.mid === mid);
      return v ? v.framesDecoded : 0;
    };
    for (const member of this.members.values()) {
      const { camera, screen, audio } = member.mids;
      if (screen && frames(summary, screen) > frames(before, screen)) member.screenSeen = summary.time;
      const sharing = Boolean(screen) && summary.time - member.screenSeen < SCREEN_IDLE_MS;
      if (member.screen.hidden === sharing) {
        member.screen.hidden = !sharing;
        this.onChange();
      }
      this.describe(member.camera, [rows.get(camera), rows.get(audio)], summary);
      this.describe(member.screen, [rows.get(screen)], summary);
    }
  }

  // "layer 320x240 . VP8 15 fps . 312 kbit/s . lost 0 (0.0 %) . RTT < 1 ms" (the layer is
  // the resolution received: the call server forwards one layer per track).
  describe(tile, rows, summary) {
    const line = tile.querySelector('.tile-stats');
    const present = rows.filter(Boolean);
    const video = present.find((r) => r.kind === 'video');
    const parts = [];
    if (video && video.width) parts.push(`layer ${video.width}\u00d7${video.height}`, `${video.codec} ${Math.round(video.fps)} fps`);
    const bitrate = present.reduce((sum, r) => (r.bitrate == null ? sum : (sum || 0) + r.bitrate), null);
    const lost = present.reduce((sum, r) => sum + r.packetsLost, 0);
    const received = present.reduce((sum, r) => sum + (r.packetsReceived || 0), 0);
    parts.push(formatKbps(bitrate), `lost ${lost} (${(received + lost ? (100 * lost) / (received + lost) : 0).toFixed(1)} %)`,
      `RTT ${formatMs(summary.rttMs)}`);
    line.textContent = present.length ? parts.join(' \u00b7 ') : 'no media yet';
    line.dataset.bitrate = bitrate == null ? '' : String(Math.round(bitrate));
    line.dataset.layer = video && video.width ? `${video.width}x${video.height}` : '';
    line.hidden = !this.showStats;
  }

  setShowStats(open) {
    this.showStats = open;
    for (const line of $('tiles').querySelectorAll('.tile-stats')) line.hidden = !open;
  }

  // Share (a stream with a video track) or stop (null): the screen section's track.
  async setScreen(stream) {
    if (this.link) await this.link.setScreen(stream ? stream.getVideoTracks()[0] : null);
  }

  close() {
    this.generation += 1;
    clearTimeout(this.watchdog);
    clearInterval(this.timer);
    clearTimeout(this.qualityTimer);
    if (this.resizes) this.resizes.disconnect();
    if (this.link) this.link.close();
    this.link = null;
    for (const sessionId of [...this.members.keys()]) this.removeMember(sessionId);
  }
}
