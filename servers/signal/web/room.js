// Group calls. A mesh: one PeerLink per other participant, one labelled tile
// each, the active speaker outlined; the joiner offers to everyone already in
// the room and they answer, so no pair ever glares. Once signaling puts the
// room on the call server (room.topology, or the join answer), the mesh links
// close and an SfuRoom takes over: one connection to the call server,
// renewed when the room moves to another (room.moved).

import { PeerLink } from './peer.js';
import { describeMediaError } from './media.js';
import { SfuRoom } from './sfuroom.js';
import { StudioPanel, PROGRAM } from './studio.js';
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
    $('room-leave').addEventListener('click', () => this.leave(true));
    $('room-mute').addEventListener('click', () => this.toggle('audio'));
    $('room-camera').addEventListener('click', () => this.toggle('video'));
    $('room-share').addEventListener('click', () => this.toggleShare());
    $('room-stats').addEventListener('click', () => this.showStats(!this.statsOpen));
    $('room-record').addEventListener('click', () => this.toggleRecording());
    this.statsOpen = false;
    this.studio = new StudioPanel(app, (sessionId) => (sessionId === app.sessionId ? app.me
      : this.room ? this.room.members.get(sessionId) : null));
  }

  async create() {
    if (this.app.busy()) return this.app.notify('Hang up the current call first.', true);
    await this.enter(async () => this.app.client.request('room.create', { media: ['audio', 'video'] }));
  }

  onInvited(p) {
    this.offerJoin(p, `${p.from} invites you to a group call.`, 'Join');
  }

  // The invitation card: an invitation, or the room just left (an invited user may join again).
  offerJoin(invitation, text, action) {
    this.invitation = invitation;
    $('room-invite-text').textContent = text;
    $('room-join').textContent = action;
    $('room-invite').hidden = false;
    const p = invitation;
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
    const room = { id: null, links: new Map(), members: new Map(), sfu: null, relayOnly: $('relay-only').checked };
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
    // Only the owner records (docs/signaling.md); everyone sees whether the call is being recorded.
    $('room-record').hidden = ack.owner !== app.me;
    this.showRecording(Boolean(ack.recording));
    this.studio.attach(room, ack.owner === app.me);
    $('room').hidden = false;
    $('room').dataset.roomId = room.id;
    $('tile-self').querySelector('video').srcObject = room.stream;
    setTileFlags($('tile-self'), { audio: true, video: true });
    app.refresh();
    for (const p of ack.participants) {
      if (p.session_id !== app.sessionId) room.members.set(p.session_id, p.user);
    }
    this.showTopology(ack.topology, ack.call_server, null);
    if (ack.topology === 'sfu') {
      this.toSfu(room, ack.call_server);
    } else {
      for (const [sessionId, user] of room.members) this.link(room, sessionId, user, true);
      room.speakerTimer = setInterval(() => this.findSpeaker(room), SPEAKER_INTERVAL_MS);
    }
    this.updateStatus();
  }

  // The room is on the call server: the mesh links go, one connection to the call server comes.
  toSfu(room, callServer) {
    if (room.sfu) return;
    clearInterval(room.speakerTimer);
    for (const entry of room.links.values()) {
      entry.link.close();
      entry.tile.remove();
    }
    room.links.clear();
    room.sfu = new SfuRoom(this.app, room, callServer, () => this.updateStatus());
    room.sfu.setShowStats(this.statsOpen);
    room.sfu.connect();
    $('room-share').hidden = false;
    $('room-stats').hidden = false;
  }

  onMedia(p) {
    const room = this.room;
    if (room && room.sfu && room.id === p.room_id) room.sfu.onMedia(p);
  }

  onSlots(p) {
    const room = this.room;
    if (room && room.sfu && room.id === p.room_id) room.sfu.setSlots(p.slots);
  }

  // The owner starts or stops the recording; room.recording tells everyone (the owner too).
  async toggleRecording() {
    const room = this.room;
    if (!room || !room.id) return;
    const action = $('room').dataset.recording === 'true' ? 'stop' : 'start';
    try {
      const ack = await this.app.client.request('room.record', { room_id: room.id, action });
      this.showRecording(Boolean(ack.recording));
    } catch (err) {
      this.app.fail(err);
    }
  }

  onRecording(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.showRecording(p.state === 'started');
    this.app.notify(p.state === 'started' ? `${p.by} started recording this call.` : `${p.by} stopped the recording.`);
  }

  showRecording(on) {
    $('room').dataset.recording = String(on);
    $('room-record').textContent = on ? 'Stop recording' : 'Record';
    $('room-record').setAttribute('aria-pressed', String(on));
  }

  // studio.state: the panel, and on the first one a tile for the program (the call server's publisher)
  onStudio(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.studio.onState(p);
    if (room.sfu && !room.sfu.members.has(PROGRAM)) room.sfu.addMember(PROGRAM, 'Program');
  }

  // studio.stopped: the panel goes, and the program's tile (the call server gives its slots other tracks)
  onStudioStopped(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.studio.onStopped(p);
    if (room.sfu && room.sfu.members.has(PROGRAM)) room.sfu.removeMember(PROGRAM);
  }

  onSpeaker(p) {
    const room = this.room;
    if (room && room.sfu && room.id === p.room_id) room.sfu.onSpeaker(p);
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
    room.members.set(p.session_id, p.user);
    if (room.sfu) room.sfu.addMember(p.session_id, p.user);
    else this.link(room, p.session_id, p.user, false);
    this.updateStatus();
  }

  onLeft(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    room.members.delete(p.session_id);
    if (room.sfu) room.sfu.removeMember(p.session_id);
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
    if (!room || room.id !== p.room_id || room.sfu) return;
    const entry = this.link(room, p.from, p.from_user, false);
    if (p.kind === 'candidate') entry.link.handleCandidate(p.candidate);
    else entry.link.handleDescription(p.kind, p.sdp);
  }

  onTopology(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.showTopology(p.mode, p.call_server, p.reason);
    if (p.mode === 'sfu') this.toSfu(room, p.call_server);
  }

  // The room's call server died (or it had none) and signaling placed it on another.
  // A new connection to the new server (none: wait for the next room.moved).
  onMoved(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.showTopology('sfu', p.call_server, p.reason);
    if (room.sfu) room.sfu.moved(p.call_server);
    else this.toSfu(room, p.call_server);
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
      studio: 'its owner made it a studio',
    }[reason] || 'the server decided';
    box.textContent = callServer ? `This call moved to the call server (${callServer}) because ${why}.`
      : 'This call waits for a call server: none is available right now.';
    box.hidden = false;
  }

  updateStatus() {
    const room = this.room;
    if (!room) return;
    const count = room.members.size + 1;
    if (room.sfu) {
      const sfu = room.sfu;
      $('room').dataset.sfuState = sfu.state;
      $('room-status').textContent = `Group call: ${count} participants, ${sfu.state} to the call server` +
        `${sfu.callServer ? ` ${sfu.callServer}` : ''}.`;
      return;
    }
    const connected = [...room.links.values()].filter((e) => e.link.pc.connectionState === 'connected').length;
    $('room-status').textContent = `Group call: ${count} participants, ${connected} connected (mesh).`;
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

  // Screen sharing goes through the call server (the screen section of its connection).
  async toggleShare() {
    const room = this.room;
    if (!room || !room.sfu) return;
    if (room.screen) return this.stopShare(room);
    const screen = await this.app.openShare(() => this.room === room);
    if (!screen) return;
    screen.getVideoTracks()[0].addEventListener('ended', () => this.stopShare(room));
    room.screen = screen;
    room.screenTile = makeTile('Your screen', 'self-screen');
    const video = room.screenTile.querySelector('video');
    video.muted = true;
    video.srcObject = screen;
    $('tile-self').after(room.screenTile);
    $('room-share').textContent = 'Stop sharing';
    $('room-share').setAttribute('aria-pressed', 'true');
    await room.sfu.setScreen(screen);
  }

  stopShare(room) {
    if (!room.screen) return;
    room.screen.getTracks().forEach((t) => t.stop());
    room.screen = null;
    if (room.screenTile) room.screenTile.remove();
    room.screenTile = null;
    if (room.sfu) room.sfu.setScreen(null);
    if (this.room !== room) return;
    $('room-share').textContent = 'Share screen';
    $('room-share').setAttribute('aria-pressed', 'false');
  }

  showStats(open) {
    this.statsOpen = open;
    $('room-stats').setAttribute('aria-expanded', String(open));
    $('room-stats').textContent = open ? 'Hide stats' : 'Show stats';
    if (this.room && this.room.sfu) this.room.sfu.setShowStats(open);
  }

  invite(user) {
    const room = this.room;
    if (!room || !room.id) return;
    this.app.client.request('room.invite', { room_id: room.id, to: user })
      .then(() => this.app.notify(`Invited ${user} to the group call.`))
      .catch((err) => this.app.fail(err, user));
  }

  // rejoin: offer to join the room again (the Leave button; not on logout).
  async leave(rejoin = false) {
    const room = this.room;
    if (!room) return;
    this.teardown();
    if (room.id && rejoin) this.offerJoin({ room_id: room.id, from: room.owner }, 'You left the group call.', 'Rejoin');
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
    if (room.sfu) room.sfu.close();
    $('tile-self').classList.remove('speaking');
    this.stopShare(room);
    if (room.stream) room.stream.getTracks().forEach((t) => t.stop());
    $('tile-self').querySelector('video').srcObject = null;
    $('room').hidden = true;
    $('room-topology').hidden = true;
    $('room-share').hidden = true;
    $('room-stats').hidden = true;
    $('room-record').hidden = true;
    this.studio.attach(null, false);
    this.showRecording(false);
    delete $('room').dataset.sfuState;
    for (const [id, text] of [['room-mute', 'Mute'], ['room-camera', 'Camera off'], ['room-share', 'Share screen']]) {
      $(id).textContent = text;
      $(id).setAttribute('aria-pressed', 'false');
    }
    this.app.refresh();
  }
}
