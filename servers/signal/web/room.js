// Group calls (mesh): one PeerLink per other participant, one labelled tile
// each, the active speaker outlined. The joiner offers to everyone already in
// the room and they answer, so no pair ever glares.

import { PeerLink } from './peer.js';
import { describeMediaError } from './media.js';
import { $, makeTile, setTileFlags } from './ui.js';

const SPEAKER_INTERVAL_MS = 500;
const SPEAKING_LEVEL = 0.02;  // audioLevel (0..1) above which someone counts as talking

export class RoomView {
  constructor(app) {
    this.app = app;
    this.room = null;
    this.invitation = null;
    $('room-create').addEventListener('click', () => this.create());
    $('room-join').addEventListener('click', () => this.join());
    $('room-ignore').addEventListener('click', () => { this.invitation = null; $('room-invite').hidden = true; });
    $('room-leave').addEventListener('click', () => this.leave());
    $('room-mute').addEventListener('click', () => this.toggle('audio'));
    $('room-camera').addEventListener('click', () => this.toggle('video'));
  }

  async create() {
    if (this.app.busy()) return this.app.notify('Hang up the current call first.', true);
    await this.enter(async () => this.app.client.request('room.create', { media: ['audio', 'video'] }));
  }

  onInvited(p) {
    this.invitation = p;
    $('room-invite-text').textContent = `${p.from} invites you to a group call.`;
    $('room-invite').hidden = false;
    $('room-invite').dataset.from = p.from;
  }

  async join() {
    const invite = this.invitation;
    if (!invite) return;
    this.invitation = null;
    $('room-invite').hidden = true;
    if (this.app.busy()) return this.app.notify('Hang up the current call first.', true);
    await this.enter(async () => this.app.client.request('room.join', { room_id: invite.room_id }));
  }

  async enter(request) {
    const app = this.app;
    app.notices.clear();
    const room = { id: null, links: new Map(), relayOnly: $('relay-only').checked };
    this.room = room;
    app.refresh();
    try {
      room.stream = await app.openMedia(['audio', 'video'], app.settingsCaps());
    } catch (err) {
      this.room = null;
      app.refresh();
      return app.notify(describeMediaError(err), true);
    }
    let ack;
    try {
      ack = await request();
    } catch (err) {
      this.teardown();
      return app.fail(err);
    }
    room.id = ack.room_id;
    room.owner = ack.owner;
    $('room').hidden = false;
    $('room').dataset.roomId = room.id;
    $('tile-self').querySelector('video').srcObject = room.stream;
    setTileFlags($('tile-self'), { audio: true, video: true });
    app.refresh();
    this.showTopology(ack.topology, ack.call_server, null);
    for (const p of ack.participants) {
      if (p.session_id !== app.sessionId) this.link(room, p.session_id, p.user, true);
    }
    room.speakerTimer = setInterval(() => this.findSpeaker(room), SPEAKER_INTERVAL_MS);
    this.updateStatus();
  }

  localState(room) {
    const on = (tracks) => tracks.some((t) => t.enabled);
    return { audio: on(room.stream.getAudioTracks()), video: on(room.stream.getVideoTracks()), screen: null };
  }

  link(room, sessionId, user, offerer) {
    let entry = room.links.get(sessionId);
    if (entry) return entry;
    const tile = makeTile(user, 'camera');
    tile.dataset.session = sessionId;
    tile.dataset.user = user;
    const video = tile.querySelector('video');
    $('tiles').append(tile);
    const link = new PeerLink({
      iceServers: this.app.iceServers,
      relayOnly: room.relayOnly,
      polite: !offerer,
      offerer,
      stream: room.stream,
      send: (kind, data) => {
        const payload = { room_id: room.id, to: sessionId, kind };
        if (kind === 'candidate') payload.candidate = data; else payload.sdp = data;
        this.app.client.request('room.signal', payload).catch((err) => {
          if (this.room === room && err.code !== 404) this.app.fail(err);
        });
      },
      onTrack: (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); },
      onState: (state) => { tile.dataset.state = state; this.updateStatus(); },
      onError: (err) => this.app.notify(`Media negotiation with ${user} failed: ${err.message}`, true),
      onPeerState: (state) => setTileFlags(tile, { audio: state.audio !== false, video: state.video !== false }),
    });
    link.sendState(this.localState(room));
    entry = { link, user, tile, energy: null };
    room.links.set(sessionId, entry);
    this.updateStatus();
    return entry;
  }

  onJoined(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.app.notify(`${p.user} joined the group call.`);
    this.link(room, p.session_id, p.user, false);
  }

  onLeft(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    const entry = room.links.get(p.session_id);
    if (entry) {
      entry.link.close();
      entry.tile.remove();
      room.links.delete(p.session_id);
    }
    this.app.notify(`${p.user} left the group call.`);
    this.updateStatus();
  }

  onSignal(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    const entry = this.link(room, p.from, p.from_user, false);
    if (p.kind === 'candidate') entry.link.handleCandidate(p.candidate);
    else entry.link.handleDescription(p.kind, p.sdp);
  }

  onTopology(p) {
    if (!this.room || this.room.id !== p.room_id) return;
    this.showTopology(p.mode, p.call_server, p.reason);
  }

  // The room's call server died (or it had none) and signaling placed it on another.
  onMoved(p) {
    if (!this.room || this.room.id !== p.room_id) return;
    this.showTopology('sfu', p.call_server, p.reason);
  }

  showTopology(mode, callServer, reason) {
    const box = $('room-topology');
    $('room').dataset.topology = mode;
    if (mode === 'mesh') {
      box.hidden = true;
      return;
    }
    const why = {
      recording: 'recording started',
      threshold: 'the group grew past the mesh limit',
      failover: 'its previous call server stopped answering',
      placed: 'a call server became available',
    }[reason] || 'the server decided';
    box.textContent = `This call moved to the call server${callServer ? ` (${callServer})` : ''} because ${why}. ` +
      'This page does not talk to the call server yet: the existing mesh links keep running, new participants cannot reach you.';
    box.hidden = false;
  }

  updateStatus() {
    const room = this.room;
    if (!room) return;
    const connected = [...room.links.values()].filter((e) => e.link.pc.connectionState === 'connected').length;
    $('room-status').textContent = `Group call: ${room.links.size + 1} participants, ${connected} connected (mesh).`;
  }

  // The loudest participant above a floor gets the outline. The level is the
  // inbound audio's audioLevel, or the rise of totalAudioEnergy since the last look.
  async findSpeaker(room) {
    let loudest = null;
    let best = SPEAKING_LEVEL;
    for (const entry of room.links.values()) {
      let level = 0;
      const report = await entry.link.pc.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
        if (s.audioLevel != null) level = s.audioLevel;
        else if (s.totalAudioEnergy != null && s.totalSamplesDuration != null) {
          const old = entry.energy;
          entry.energy = [s.totalAudioEnergy, s.totalSamplesDuration];
          const seconds = old ? s.totalSamplesDuration - old[1] : 0;
          if (seconds > 0) level = Math.sqrt(Math.max(0, s.totalAudioEnergy - old[0]) / seconds);
        }
      });
      if (entry.tile.dataset.muted === 'true') level = 0;
      if (level > best) { best = level; loudest = entry; }
    }
    if (this.room !== room) return;
    for (const entry of room.links.values()) entry.tile.classList.toggle('speaking', entry === loudest);
  }

  toggle(kind) {
    const room = this.room;
    if (!room) return;
    const [id, on, off] = kind === 'audio' ? ['room-mute', 'Mute', 'Unmute'] : ['room-camera', 'Camera off', 'Camera on'];
    if (this.app.toggleTracks(room.stream, kind, $(id), on, off) === null) return;
    const state = this.localState(room);
    setTileFlags($('tile-self'), state);
    for (const entry of room.links.values()) entry.link.sendState(state);
  }

  invite(user) {
    const room = this.room;
    if (!room || !room.id) return;
    this.app.client.request('room.invite', { room_id: room.id, to: user })
      .then(() => this.app.notify(`Invited ${user} to the group call.`))
      .catch((err) => this.app.fail(err, user));
  }

  async leave() {
    const room = this.room;
    if (!room) return;
    this.teardown();
    if (room.id) {
      try {
        await this.app.client.request('room.leave', { room_id: room.id });
      } catch (err) {
        if (err.code !== 404) this.app.fail(err);
      }
    }
  }

  teardown() {
    const room = this.room;
    if (!room) return;
    this.room = null;
    clearInterval(room.speakerTimer);
    for (const entry of room.links.values()) {
      entry.link.close();
      entry.tile.remove();
    }
    if (room.stream) room.stream.getTracks().forEach((t) => t.stop());
    $('tile-self').querySelector('video').srcObject = null;
    $('room').hidden = true;
    $('room-topology').hidden = true;
    for (const [id, text] of [['room-mute', 'Mute'], ['room-camera', 'Camera off']]) {
      $(id).textContent = text;
      $(id).setAttribute('aria-pressed', 'false');
    }
    this.app.refresh();
  }
}
