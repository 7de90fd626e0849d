// The netcore web client: log in, friends and presence, 1-to-1 calls with a
// live stats panel, screen sharing, capability settings, a pre-call device
// check and mesh group calls. Talks only to netcore-signal (docs/signaling.md);
// media goes peer to peer or through the TURN servers that `welcome` lists.
//
// What the screen shows follows the state: a notice belongs to a moment and
// goes when the next state comes (or after a few seconds); call buttons are
// enabled only when a call is possible; every video tile says whose it is.

import { SignalClient, describeError } from './signal.js';
import { PeerLink } from './peer.js';
import { summarize, render } from './stats.js';
import { applyCaps, describeMediaError, mergeCaps, openScreen, openUserMedia } from './media.js';
import { DeviceCheck } from './devices.js';
import { $, Notices, banner, fieldError, initial, setTileFlags, setTileName } from './ui.js';
import { RoomView } from './room.js';
import { FriendsView } from './friends.js';
import { RecordingsView } from './recordings.js';
import { WatchView, parseWatchRoute } from './watch.js';

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;

const ENDED_TEXT = {
  hangup: (peer) => `${peer} hung up.`,
  declined: (peer) => `${peer} declined the call.`,
  busy: (peer) => `${peer} is busy.`,
  cancelled: (peer) => `${peer} cancelled the call.`,
  timeout: (peer) => `No answer from ${peer}.`,
  disconnected: (peer) => `The connection to ${peer} was lost.`,
  unavailable: (peer) => `${peer} is unavailable.`,
  answered_elsewhere: () => 'The call was answered on another device.',
};

// The same, for a call that rang here and ended before we answered.
const RING_ENDED_TEXT = {
  cancelled: (peer) => `${peer} cancelled the call.`,
  timeout: (peer) => `Missed call from ${peer}.`,
  answered_elsewhere: () => 'The call was answered on another device.',
  unavailable: (peer) => `Call from ${peer} ended.`,
};

const MEDIA_TEXT = (media) => (media.includes('video') ? 'Video call' : 'Audio call');

class App {
  constructor() {
    this.client = null;
    this.me = null;
    this.sessionId = null;
    this.iceServers = [];
    this.call = null;           // the 1-to-1 call
    this.incoming = null;       // {call_id, from, media, caps}
    this.stats = null;          // last stats summary of the call
    this.statsTimer = null;
    this.statsOpen = false;     // the panel stays as the user left it, call to call
    this.token = null;
    this.notices = new Notices();
    this.devices = new DeviceCheck({
      preview: $('device-preview'), cameraSelect: $('camera-select'), micSelect: $('mic-select'),
      meter: $('mic-level'), error: $('device-error'), start: $('device-test'), stop: $('device-stop'),
    });
    this.rooms = new RoomView(this);
    this.people = new FriendsView(this);
    this.recordings = new RecordingsView(this);
    this.watch = new WatchView(this);
    this.bind();
  }

  get room() {
    return this.rooms.room;
  }

  // --- UI plumbing ------------------------------------------------------

  notify(text, isError = false) {
    this.notices.show(text, isError);
  }

  fail(err, about) {
    this.notify(describeError(err, about), true);
  }

  bind() {
    $('login-form').addEventListener('submit', (e) => { e.preventDefault(); this.login(false); });
    $('register-button').addEventListener('click', () => this.login(true));
    $('logout').addEventListener('click', () => this.logout());
    $('accept-call').addEventListener('click', () => this.acceptCall());
    $('decline-call').addEventListener('click', () => this.declineCall());
    $('incoming').addEventListener('keydown', (e) => { if (e.key === 'Escape') this.declineCall(); });
    $('cancel-call').addEventListener('click', () => this.cancelCall());
    $('hangup').addEventListener('click', () => this.hangup());
    $('mute').addEventListener('click', () => this.toggleCallTrack('audio'));
    $('camera').addEventListener('click', () => this.toggleCallTrack('video'));
    $('share').addEventListener('click', () => this.toggleShare());
    $('stats-toggle').addEventListener('click', () => this.showStats(!this.statsOpen));
    window.addEventListener('hashchange', () => this.route());
  }

  // The watch page when the hash says `#watch/ROOM` (once logged in); leaving it when it no longer does.
  route() {
    const route = parseWatchRoute(location.hash, location.search);
    const watching = this.watch.room;
    if (watching && (!route || route.room !== watching.id)) this.watch.leave();
    if (!route || !this.me || (this.watch.room && this.watch.room.id === route.room)) return;
    if (this.busy()) return this.notify('Hang up the current call first.', true);
    this.watch.start(route.room, route.region);
  }

  settingsCaps() {
    const caps = {};
    const resolution = $('max-resolution').value;
    if (resolution) caps.max_resolution = resolution;
    const fps = Number($('max-framerate').value);
    if (fps >= 1) caps.max_framerate = Math.min(240, Math.round(fps));
    const kbps = Number($('bandwidth').value);
    if (kbps > 0) caps.bandwidth = Math.round(kbps * 1000);
    return caps;
  }

  // Camera and microphone for a call or room: the devices chosen in the check,
  // which itself lets go of them first.
  openMedia(media, caps) {
    const devices = this.devices.chosen();
    this.devices.stop();
    return openUserMedia(media, caps, devices);
  }

  // Redraw what depends on whether a call is possible.
  refresh() {
    $('idle').hidden = Boolean(this.call || this.room || this.watch.active);
    $('people').hidden = this.watch.active;
    $('app').classList.toggle('watching', this.watch.active);
    $('room-create').disabled = this.busy() || Boolean(this.incoming);
    this.people.render();
  }

  // --- session ----------------------------------------------------------

  listen(client) {
    const on = (type, fn) => client.addEventListener(type, (e) => fn.call(this, e.detail));
    on('welcome', this.onWelcome);
    on('closed', this.onClosed);
    this.people.listen(on);
    this.recordings.listen(on);
    this.watch.listen(on);
    on('call.incoming', this.onIncoming);
    on('call.accepted', this.onAccepted);
    on('call.offer', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleDescription('offer', p.sdp));
    on('call.answer', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleDescription('answer', p.sdp));
    on('call.candidate', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleCandidate(p.candidate));
    on('call.ended', this.onEnded);
    on('room.invited', (p) => this.rooms.onInvited(p));
    on('room.joined', (p) => this.rooms.onJoined(p));
    on('room.left', (p) => this.rooms.onLeft(p));
    on('room.signal', (p) => this.rooms.onSignal(p));
    on('room.topology', (p) => this.rooms.onTopology(p));
    on('room.moved', (p) => this.rooms.onMoved(p));
    on('room.media', (p) => this.rooms.onMedia(p));
    on('room.slots', (p) => this.rooms.onSlots(p));
    on('room.speaker', (p) => this.rooms.onSpeaker(p));
    on('room.recording', (p) => this.rooms.onRecording(p));
    on('studio.state', (p) => this.rooms.onStudio(p));
    on('studio.stopped', (p) => this.rooms.onStudioStopped(p));
    on('error', (p) => this.notify(`The server reported an error: ${p.reason} (${p.code}).`, true));
  }

  async login(register) {
    const username = $('username').value.trim();
    const password = $('password').value;
    fieldError('login-error', '');
    if (!/^[a-z0-9_-]{3,32}$/.test(username)) return fieldError('login-error', 'A username is 3 to 32 of a-z, 0-9, _ and -.');
    if (password.length < 8) return fieldError('login-error', 'A password has at least 8 characters.');
    this.client = new SignalClient(wsUrl);
    this.listen(this.client);
    try {
      await this.client.open();
      if (register) await this.client.request('register', { username, password });
      const ack = await this.client.request('login', { username, password });
      this.token = ack.token;
    } catch (err) {
      this.client.close();
      this.client = null;
      return fieldError('login-error', describeError(err));
    }
  }

  logout() {
    this.hangup();
    this.rooms.leave();
    this.watch.leave();
    this.devices.stop();
    this.recordings.clear();
    if (this.client) this.client.close();
    this.client = null;
    this.token = null;
    this.me = null;
    this.notices.clear();
    banner('');
    $('app').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    $('me').hidden = true;
    $('connection').hidden = true;
  }

  setConnection(state) {
    const badge = $('connection');
    badge.textContent = state;
    badge.className = `badge ${state}`;
    badge.hidden = false;
  }

  onWelcome(p) {
    this.me = p.user;
    this.sessionId = p.session_id;
    this.iceServers = p.ice_servers || [];
    if (!p.resumed) this.people.load(p.friends);
    if (!p.resumed) this.recordings.refresh();
    fieldError('login-error', '');
    banner('');
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    $('me').hidden = false;
    $('me').textContent = p.user;
    for (const id of ['tile-local', 'tile-self']) setTileName($(id), 'You', p.user);
    this.setConnection('online');
    document.body.dataset.user = p.user;
    if (p.resumed) this.notify('Reconnected.');
    else this.notices.clear();
    this.refresh();
    if (!p.resumed) this.route();
  }

  async onClosed(detail) {
    // Only a session that was open is "offline": a refused login never was online.
    if (detail.byUser || !this.token || !this.me) return;
    // Resume within the server's window: calls and rooms survive a short drop.
    this.setConnection('reconnecting');
    banner('Connection to the server lost, reconnecting\u2026');
    for (let attempt = 0; attempt < 10 && this.client; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 5000)));
      try {
        await this.client.open({ token: this.token, resume: true });
        return;
      } catch {
        // try again
      }
    }
    this.setConnection('offline');
    banner('Cannot reach the server. Reload the page to log in again.', true);
  }

  // --- 1-to-1 calls -----------------------------------------------------

  busy() {
    return Boolean(this.call || this.room || this.watch.active);
  }

  async startCall(peer, media) {
    if (this.busy()) return this.notify('Hang up the current call first.', true);
    this.notices.clear();
    const caps = this.settingsCaps();
    const call = { id: null, peer, media, caps, peerCaps: {}, role: 'caller', relayOnly: $('relay-only').checked };
    this.call = call;
    this.refresh();
    try {
      call.stream = await this.openMedia(media, caps);
    } catch (err) {
      this.call = null;
      this.refresh();
      return this.notify(describeMediaError(err), true);
    }
    this.showCall(`Calling ${peer}\u2026`, 'ringing');
    try {
      const ack = await this.client.request('call.invite', { to: peer, media, caps });
      call.id = ack.call_id;
      if (this.call !== call) this.client.send('call.cancel', { call_id: call.id });
    } catch (err) {
      if (this.call === call) this.teardownCall();
      this.fail(err, peer);
    }
  }

  onIncoming(p) {
    if (this.busy() || this.incoming) {
      this.client.send('call.reject', { call_id: p.call_id, reason: 'busy' });
      return;
    }
    this.notices.clear();
    this.incoming = p;
    this.returnFocus = document.activeElement;
    $('incoming-text').textContent = `${p.from} is calling (${p.media.join(' and ')}).`;
    $('incoming-kind').textContent = MEDIA_TEXT(p.media);
    $('incoming-avatar').textContent = initial(p.from);
    $('incoming').dataset.from = p.from;
    $('incoming').hidden = false;
    this.setBackgroundInert(true);  // keyboard and pointer stay in the modal
    $('accept-call').focus();
    this.refresh();
  }

  closeIncoming() {
    this.incoming = null;
    $('incoming').hidden = true;
    this.setBackgroundInert(false);
    if (this.returnFocus && document.contains(this.returnFocus)) this.returnFocus.focus();
    this.returnFocus = null;
  }

  setBackgroundInert(inert) {
    for (const el of document.querySelectorAll('body > header, body > main, #banner')) el.inert = inert;
  }

  async acceptCall() {
    const p = this.incoming;
    if (!p) return;
    this.closeIncoming();
    this.notices.clear();
    const media = p.media.filter((m) => m !== 'screen');
    const caps = this.settingsCaps();
    const call = { id: p.call_id, peer: p.from, media, caps, peerCaps: p.caps || {}, role: 'callee', relayOnly: $('relay-only').checked };
    this.call = call;
    this.refresh();
    try {
      call.stream = await this.openMedia(media.length ? media : ['audio'], caps);
    } catch (err) {
      this.call = null;
      this.refresh();
      this.client.send('call.reject', { call_id: p.call_id, reason: 'declined' });
      return this.notify(describeMediaError(err), true);
    }
    try {
      await this.client.request('call.accept', { call_id: p.call_id, caps });
    } catch (err) {
      if (this.call === call) this.teardownCall();
      return this.fail(err, p.from);
    }
    if (this.call !== call) return;
    this.connect(call, false);
  }

  async declineCall() {
    const p = this.incoming;
    if (!p) return;
    this.closeIncoming();
    this.refresh();
    try {
      await this.client.request('call.reject', { call_id: p.call_id, reason: 'declined' });
      this.notify(`You declined the call from ${p.from}.`);
    } catch (err) {
      this.fail(err, p.from);
    }
  }

  async cancelCall() {
    const call = this.call;
    if (!call || call.state !== 'ringing') return;
    this.teardownCall();
    this.notify(`Call to ${call.peer} cancelled.`);
    if (call.id) {
      try {
        await this.client.request('call.cancel', { call_id: call.id });
      } catch (err) {
        if (err.code !== 404 && err.code !== 409) this.fail(err, call.peer);
      }
    }
  }

  onAccepted(p) {
    const call = this.call;
    if (!call || call.id !== p.call_id) return;
    call.peerCaps = p.caps || {};
    this.connect(call, true);
  }

  connect(call, offerer) {
    this.showCall(`Connecting to ${call.peer}\u2026`, 'connecting');
    call.remoteStreams = [];       // stream ids in arrival order: the first is the camera
    call.remoteTrackStream = new Map();  // track id -> stream id
    call.peerState = {};
    call.link = new PeerLink({
      iceServers: this.iceServers,
      relayOnly: call.relayOnly,
      polite: !offerer,
      offerer,
      stream: call.stream,
      send: (kind, data) => {
        const payload = { call_id: call.id };
        if (kind === 'candidate') payload.candidate = data; else payload.sdp = data;
        this.client.request(`call.${kind}`, payload).catch((err) => { if (this.call === call) this.fail(err, call.peer); });
      },
      onTrack: (event) => this.onCallTrack(call, event),
      onState: (state) => this.onCallState(call, state),
      onError: (err) => this.notify(`Media negotiation failed: ${err.message}`, true),
      onPeerState: (state) => this.onPeerState(call, state),
    });
    call.link.pc.onsignalingstatechange = () => {
      if (call.link.pc.signalingState === 'stable') this.applyCallCaps(call);
    };
    this.sendCallState(call);
    this.startStats(call);
  }

  applyCallCaps(call) {
    const caps = mergeCaps(call.caps, call.peerCaps);
    call.appliedCaps = caps;
    applyCaps(call.link.pc, caps).catch((err) => this.notify(`Could not apply the capability settings: ${err.message}`, true));
  }

  sendCallState(call) {
    const tracks = (kind) => (kind === 'audio' ? call.stream.getAudioTracks() : call.stream.getVideoTracks());
    const on = (kind) => tracks(kind).some((t) => t.enabled);
    const state = { audio: on('audio'), video: on('video'), screen: call.screen ? call.screen.id : null };
    setTileFlags($('tile-local'), state);
    if (call.link) call.link.sendState(state);
  }

  // Which of the peer's streams a track belongs to: the one it says is its screen, else by order.
  remoteRole(call, trackId) {
    const streamId = call.remoteTrackStream.get(trackId);
    if (!streamId) return null;
    if (call.peerState.screen) return streamId === call.peerState.screen ? 'screen' : 'camera';
    return call.remoteStreams[0] === streamId ? 'camera' : 'screen';
  }

  onCallTrack(call, event) {
    const stream = event.streams[0] || new MediaStream([event.track]);
    if (!call.remoteStreams.includes(stream.id)) call.remoteStreams.push(stream.id);
    call.remoteTrackStream.set(event.track.id, stream.id);
    const screen = this.remoteRole(call, event.track.id) === 'screen';
    const video = screen ? $('remote-screen') : $('remote-video');
    if (video.srcObject !== stream) video.srcObject = stream;
    if (screen) {
      this.showRemoteScreen(true);
      event.track.addEventListener('mute', () => { if (this.call === call) this.showRemoteScreen(false); });
      event.track.addEventListener('unmute', () => { if (this.call === call) this.showRemoteScreen(true); });
    }
  }

  onPeerState(call, state) {
    if (this.call !== call) return;
    call.peerState = state || {};
    setTileFlags($('tile-remote'), { audio: state.audio !== false, video: state.video !== false });
    if (!state.screen) this.showRemoteScreen(false);
  }

  showRemoteScreen(shown) {
    $('remote-screen').hidden = !shown;
    $('tile-screen').hidden = !shown;
    this.layoutCall();
  }

  layoutCall() {
    const screen = !$('tile-screen').hidden || !$('tile-my-screen').hidden;
    $('call-tiles').classList.toggle('has-screen', screen);
  }

  onCallState(call, state) {
    if (this.call !== call) return;
    call.connectionState = state;
    if (state === 'connected') {
      call.state = 'active';
      $('call-status').textContent = `In a call with ${call.peer}`;
      $('call').dataset.state = 'active';
      this.applyCallCaps(call);
    } else if (state === 'failed') {
      $('call-status').textContent = `The media path to ${call.peer} failed` +
        (call.relayOnly ? ' (relay only: is the TURN server reachable?)' : '') + '.';
      $('call').dataset.state = 'failed';
    } else if (state === 'disconnected') {
      $('call-status').textContent = `Media from ${call.peer} interrupted\u2026`;
    }
  }

  showCall(text, state) {
    const call = this.call;
    call.state = state;
    $('call').hidden = false;
    $('call').dataset.state = state;
    $('call').dataset.peer = call.peer;
    $('call-status').textContent = text;
    $('local-video').srcObject = call.stream;
    const ringing = state === 'ringing';
    $('ringing').hidden = !ringing;
    $('ringing-avatar').textContent = initial(call.peer);
    $('ringing-text').textContent = `Calling ${call.peer}\u2026`;
    $('ringing-kind').textContent = `${MEDIA_TEXT(call.media)}: waiting for ${call.peer} to answer`;
    $('tile-remote').hidden = ringing;
    setTileName($('tile-remote'), call.peer);
    setTileName($('tile-screen'), `${call.peer}'s screen`);
    setTileName($('tile-my-screen'), `Your screen (${call.peer} sees this)`);
    setTileFlags($('tile-remote'), { audio: true, video: call.media.includes('video') });
    $('cancel-call').hidden = !ringing;
    for (const id of ['mute', 'share', 'hangup', 'stats-toggle']) $(id).hidden = ringing;
    $('camera').hidden = ringing || !call.stream.getVideoTracks().length;
    this.showStats(this.statsOpen);
    this.sendCallState(call);
    this.refresh();
  }

  showStats(open) {
    this.statsOpen = open;
    const ringing = !this.call || this.call.state === 'ringing';
    $('stats').hidden = !open || ringing;
    $('stats-toggle').setAttribute('aria-expanded', String(open));
    $('stats-toggle').textContent = open ? 'Hide stats' : 'Show stats';
  }

  async hangup() {
    const call = this.call;
    if (!call) return;
    this.teardownCall();
    if (call.state !== 'ringing') this.notify(`Call with ${call.peer} ended.`);
    if (call.id && call.link) {
      try {
        await this.client.request('call.hangup', { call_id: call.id });
      } catch (err) {
        if (err.code !== 404) this.fail(err, call.peer);
      }
    }
  }

  onEnded(p) {
    if (this.incoming && this.incoming.call_id === p.call_id) {
      const from = this.incoming.from;
      this.closeIncoming();
      this.refresh();
      this.notify((RING_ENDED_TEXT[p.reason] || (() => `Call from ${from} ended (${p.reason}).`))(from));
      return;
    }
    const call = this.call;
    if (!call || call.id !== p.call_id) return;
    this.teardownCall();
    const text = (ENDED_TEXT[p.reason] || ((peer) => `Call with ${peer} ended (${p.reason}).`))(call.peer);
    this.notify(text, ['busy', 'declined', 'timeout', 'unavailable', 'disconnected'].includes(p.reason));
  }

  teardownCall() {
    const call = this.call;
    if (!call) return;
    this.call = null;
    clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (call.link) call.link.close();
    for (const stream of [call.stream, call.screen]) {
      if (stream) stream.getTracks().forEach((t) => t.stop());
    }
    for (const id of ['remote-video', 'remote-screen', 'local-video', 'my-screen']) $(id).srcObject = null;
    for (const id of ['remote-screen', 'tile-screen', 'tile-my-screen', 'ringing']) $(id).hidden = true;
    this.layoutCall();
    $('stats').querySelector('tbody').replaceChildren();
    $('call').hidden = true;
    $('call').dataset.state = 'ended';
    for (const [id, text] of [['mute', 'Mute'], ['camera', 'Camera off'], ['share', 'Share screen']]) {
      $(id).textContent = text;
      $(id).setAttribute('aria-pressed', 'false');
    }
    this.refresh();
  }

  // Enable or disable the local tracks of one kind; the button shows what a press will do.
  toggleTracks(stream, kind, buttonEl, onText, offText) {
    if (!stream) return null;
    const tracks = kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks();
    if (!tracks.length) return null;
    const enabled = !tracks[0].enabled;
    tracks.forEach((t) => { t.enabled = enabled; });
    buttonEl.textContent = enabled ? onText : offText;
    buttonEl.setAttribute('aria-pressed', String(!enabled));
    return enabled;
  }

  toggleCallTrack(kind) {
    const call = this.call;
    if (!call) return;
    const [id, on, off] = kind === 'audio' ? ['mute', 'Mute', 'Unmute'] : ['camera', 'Camera off', 'Camera on'];
    if (this.toggleTracks(call.stream, kind, $(id), on, off) !== null) this.sendCallState(call);
  }

  async toggleShare() {
    const call = this.call;
    if (!call || !call.link) return;
    if (call.screen) return this.stopShare(call);
    const screen = await this.openShare(() => this.call === call);
    if (!screen) return;
    this.notices.clear();
    call.screen = screen;
    const track = screen.getVideoTracks()[0];
    call.screenSender = call.link.pc.addTrack(track, screen);
    track.addEventListener('ended', () => this.stopShare(call));
    $('my-screen').srcObject = screen;
    $('tile-my-screen').hidden = false;
    this.layoutCall();
    $('share').textContent = 'Stop sharing';
    $('share').setAttribute('aria-pressed', 'true');
    this.sendCallState(call);
  }

  // The screen for a share (getDisplayMedia), its failure told; null if it failed or
  // stillWanted() says the call or room it was for is gone.
  async openShare(stillWanted) {
    let screen;
    try {
      screen = await openScreen();
    } catch (err) {
      this.notify(describeMediaError(err, 'screen'), true);
      return null;
    }
    if (!stillWanted()) {
      screen.getTracks().forEach((t) => t.stop());
      return null;
    }
    screen.getVideoTracks()[0].contentHint = 'detail';  // text on a screen: keep the resolution, drop frames first
    return screen;
  }

  stopShare(call) {
    if (!call.screen) return;
    call.screen.getTracks().forEach((t) => t.stop());
    call.screen = null;
    if (this.call !== call) return;
    if (call.screenSender) call.link.pc.removeTrack(call.screenSender);
    call.screenSender = null;
    $('my-screen').srcObject = null;
    $('tile-my-screen').hidden = true;
    this.layoutCall();
    $('share').textContent = 'Share screen';
    $('share').setAttribute('aria-pressed', 'false');
    this.sendCallState(call);
  }

  // A stats row's name: whose track it is and what it carries; null hides it.
  describeTrack(call, row) {
    if (row.direction === 'out') {
      const isScreen = call.screen && call.screen.getTracks().some((t) => t.id === row.trackId);
      if (isScreen) return { role: 'screen', text: 'Your screen (out)', order: 2 };
      // A track the stats cannot name (no mid): the camera, unless a screen could be it.
      if (row.trackId === undefined && row.kind === 'video' && call.screen) return null;
      return row.kind === 'audio' ? { role: 'microphone', text: 'Your microphone (out)', order: 1 }
        : { role: 'camera', text: 'Your camera (out)', order: 0 };
    }
    if (row.kind === 'audio') return { role: 'microphone', text: `${call.peer}'s microphone (in)`, order: 4 };
    const role = this.remoteRole(call, row.trackId) || 'camera';
    if (role === 'screen') {
      return $('tile-screen').hidden ? null : { role, text: `${call.peer}'s screen (in)`, order: 5 };
    }
    return { role, text: `${call.peer}'s camera (in)`, order: 3 };
  }

  startStats(call) {
    clearInterval(this.statsTimer);
    this.stats = null;
    let reported = false;
    let lastSample = 0;
    const connecting = performance.now();  // answered: from here to media is the connect time
    this.statsTimer = setInterval(async () => {
      if (this.call !== call) return;
      const summary = await summarize(call.link.pc, this.stats);
      if (this.call !== call) return;
      this.stats = summary;
      render($('stats'), summary, call.relayOnly, (row) => this.describeTrack(call, row));
      // A quality sample for the analytics once media has flowed (with the connect time),
      // then every QUALITY_EVERY_MS (docs/analytics.md, call.quality).
      const flowing = summary.path && summary.framesDecoded + summary.audioSamples > 0 && call.id;
      if (flowing && (!reported || summary.time - lastSample >= QUALITY_EVERY_MS)) {
        this.client.send('call.quality', qualitySample(call.id, summary, reported ? null : summary.time - connecting));
        reported = true;
        lastSample = summary.time;
      }
    }, 1000);
  }
}

const QUALITY_EVERY_MS = 5000;
const CANDIDATE_TYPES = ['host', 'srflx', 'prflx', 'relay'];

// A call.quality payload from a stats summary; connectMs only in the first one.
function qualitySample(callId, summary, connectMs) {
  const sample = { call_id: callId, path: summary.path === 'relay' ? 'relay' : 'direct',
    rtt_ms: Math.min(60000, summary.rttMs || 0), loss: Math.min(1, summary.loss || 0), freezes: summary.freezes };
  if (summary.jitterMs != null) sample.jitter_ms = Math.min(60000, summary.jitterMs);
  if (summary.bitrateIn != null) sample.bitrate_kbps = summary.bitrateIn / 1000;
  const video = summary.video.find((v) => v.width > 0);
  if (video) { sample.width = video.width; sample.height = video.height; }
  if (CANDIDATE_TYPES.includes(summary.localType)) sample.local_type = summary.localType;
  if (CANDIDATE_TYPES.includes(summary.remoteType)) sample.remote_type = summary.remoteType;
  if (connectMs != null) sample.connect_ms = Math.min(600000, Math.round(connectMs));
  return sample;
}

window.netcore = new App();
