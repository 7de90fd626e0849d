// The netcore web client: log in, friends and presence, 1-to-1 calls with a
// live stats panel, screen sharing, capability settings and mesh group calls.
// Talks only to netcore-signal (docs/signaling.md); media goes peer to peer or
// through the TURN servers that `welcome` lists.

import { SignalClient, SignalError } from './signal.js';
import { PeerLink } from './peer.js';
import { summarize, render } from './stats.js';
import { applyCaps, describeMediaError, mergeCaps, openScreen, openUserMedia } from './media.js';

const $ = (id) => document.getElementById(id);
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

// A server error as a sentence a person can act on.
export function describeError(err, about = '') {
  if (!(err instanceof SignalError)) return String(err && err.message ? err.message : err);
  const who = about || 'That user';
  switch (err.code) {
    case 0: return err.reason.charAt(0).toUpperCase() + err.reason.slice(1) + '.';
    case 400: return `The server refused the request: ${err.reason}.`;
    case 401: return err.type === 'login' ? 'Wrong username or password.' : 'You are not logged in.';
    case 403: return `Not allowed: ${err.reason}.`;
    case 404: return `Not found: ${err.reason}.`;
    case 409: return err.type === 'register' ? 'That username is taken.' : `Not possible now: ${err.reason}.`;
    case 429: return 'Too many requests: wait a moment and try again.';
    case 480: return `${who} is offline or unavailable.`;
    case 486: return `${who} is busy.`;
    case 505: return 'The server does not speak this page\'s protocol version.';
    default: return `Error ${err.code}: ${err.reason}.`;
  }
}

class App {
  constructor() {
    this.client = null;
    this.me = null;
    this.sessionId = null;
    this.iceServers = [];
    this.friends = new Map();   // user -> status
    this.requests = new Set();  // users who asked us
    this.call = null;           // the 1-to-1 call
    this.incoming = null;       // {call_id, from, media, caps}
    this.room = null;           // the group call
    this.roomInvite = null;
    this.stats = null;          // last stats summary of the call
    this.statsTimer = null;
    this.token = null;
    this.bind();
  }

  // --- UI plumbing ------------------------------------------------------

  notify(text, isError = false) {
    const box = $('notice');
    box.textContent = text;
    box.className = isError ? 'error' : '';
    box.hidden = !text;
  }

  fail(err, about) {
    this.notify(describeError(err, about), true);
  }

  bind() {
    $('login-form').addEventListener('submit', (e) => { e.preventDefault(); this.login(false); });
    $('register-button').addEventListener('click', () => this.login(true));
    $('logout').addEventListener('click', () => this.logout());
    $('add-friend').addEventListener('submit', (e) => { e.preventDefault(); this.addFriend(); });
    $('accept-call').addEventListener('click', () => this.acceptCall());
    $('decline-call').addEventListener('click', () => this.declineCall());
    $('cancel-call').addEventListener('click', () => this.cancelCall());
    $('hangup').addEventListener('click', () => this.hangup());
    $('mute').addEventListener('click', () => this.toggleTrack(this.call, 'audio', $('mute'), 'Mute', 'Unmute'));
    $('camera').addEventListener('click', () => this.toggleTrack(this.call, 'video', $('camera'), 'Camera off', 'Camera on'));
    $('share').addEventListener('click', () => this.toggleShare());
    $('room-create').addEventListener('click', () => this.createRoom());
    $('room-join').addEventListener('click', () => this.joinRoom());
    $('room-ignore').addEventListener('click', () => { this.roomInvite = null; $('room-invite').hidden = true; });
    $('room-leave').addEventListener('click', () => this.leaveRoom());
    $('room-mute').addEventListener('click', () => this.toggleTrack(this.room, 'audio', $('room-mute'), 'Mute', 'Unmute'));
    $('room-camera').addEventListener('click', () => this.toggleTrack(this.room, 'video', $('room-camera'), 'Camera off', 'Camera on'));
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

  // --- session ----------------------------------------------------------

  listen(client) {
    const on = (type, fn) => client.addEventListener(type, (e) => fn.call(this, e.detail));
    on('welcome', this.onWelcome);
    on('closed', this.onClosed);
    on('presence', (p) => { if (this.friends.has(p.user)) { this.friends.set(p.user, p.status); this.renderFriends(); } });
    on('friend.requested', (p) => { this.requests.add(p.from); this.renderFriends(); this.notify(`${p.from} wants to be your friend.`); });
    on('friend.accepted', (p) => { this.notify(`${p.by} accepted your friend request.`); this.refreshFriends(); });
    on('friend.removed', (p) => { this.friends.delete(p.by); this.renderFriends(); });
    on('call.incoming', this.onIncoming);
    on('call.accepted', this.onAccepted);
    on('call.offer', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleDescription('offer', p.sdp));
    on('call.answer', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleDescription('answer', p.sdp));
    on('call.candidate', (p) => this.call && this.call.link && p.call_id === this.call.id && this.call.link.handleCandidate(p.candidate));
    on('call.ended', this.onEnded);
    on('room.invited', this.onRoomInvited);
    on('room.joined', this.onRoomJoined);
    on('room.left', this.onRoomLeft);
    on('room.signal', this.onRoomSignal);
    on('room.topology', this.onRoomTopology);
    on('error', (p) => this.notify(`The server reported an error: ${p.reason} (${p.code}).`, true));
  }

  async login(register) {
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!/^[a-z0-9_-]{3,32}$/.test(username)) return this.notify('A username is 3 to 32 of a-z, 0-9, _ and -.', true);
    if (password.length < 8) return this.notify('A password has at least 8 characters.', true);
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
      return this.fail(err);
    }
  }

  logout() {
    this.hangup();
    this.leaveRoom();
    if (this.client) this.client.close();
    this.client = null;
    this.token = null;
    $('app').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    $('me').hidden = true;
    $('connection').textContent = '';
  }

  onWelcome(p) {
    this.me = p.user;
    this.sessionId = p.session_id;
    this.iceServers = p.ice_servers || [];
    if (!p.resumed) {
      this.friends = new Map(p.friends.map((f) => [f.user, f.status]));
      this.refreshFriends();
    }
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    $('me').hidden = false;
    $('me').textContent = p.user;
    $('connection').textContent = 'online';
    $('connection').className = 'badge online';
    document.body.dataset.user = p.user;
    if (p.resumed) this.notify('Reconnected.');
  }

  async onClosed(detail) {
    $('connection').textContent = 'offline';
    $('connection').className = 'badge';
    if (detail.byUser || !this.token) return;
    // Resume within the server's window: calls and rooms survive a short drop.
    this.notify('Connection to the server lost, reconnecting\u2026', true);
    for (let attempt = 0; attempt < 10 && this.client; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 5000)));
      try {
        await this.client.open({ token: this.token, resume: true });
        return;
      } catch {
        // try again
      }
    }
    this.notify('Cannot reach the server. Reload the page to log in again.', true);
  }

  // --- friends ----------------------------------------------------------

  async refreshFriends() {
    try {
      const list = await this.client.request('friend.list');
      this.friends = new Map(list.friends.map((f) => [f.user, f.status]));
      this.requests = new Set(list.requests);
      this.renderFriends();
    } catch (err) {
      this.fail(err);
    }
  }

  renderFriends() {
    const ul = $('friends');
    ul.replaceChildren();
    for (const [user, status] of [...this.friends].sort()) {
      const li = document.createElement('li');
      li.dataset.user = user;
      li.dataset.status = status;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = user;
      const badge = document.createElement('span');
      badge.className = `status ${status}`;
      badge.textContent = status;
      li.append(name, badge,
        this.button('Audio call', 'call-audio', () => this.startCall(user, ['audio'])),
        this.button('Video call', 'call-video', () => this.startCall(user, ['audio', 'video'])));
      if (this.room) li.append(this.button('Invite to group', 'room-invite', () => this.inviteToRoom(user)));
      li.append(this.button('Remove', 'remove-friend', () => this.removeFriend(user)));
      ul.append(li);
    }
    const requests = $('requests');
    requests.replaceChildren();
    for (const user of [...this.requests].sort()) {
      const li = document.createElement('li');
      li.dataset.user = user;
      li.append(user, this.button('Accept', 'accept-request', () => this.acceptFriend(user)));
      requests.append(li);
    }
  }

  button(text, className, onClick) {
    const b = document.createElement('button');
    b.textContent = text;
    b.className = className;
    b.addEventListener('click', onClick);
    return b;
  }

  async addFriend() {
    const username = $('friend-name').value.trim();
    try {
      const ack = await this.client.request('friend.request', { username });
      $('friend-name').value = '';
      if (ack.state === 'friends') {
        this.notify(`You and ${username} are now friends.`);
        this.refreshFriends();
      } else {
        this.notify(`Friend request sent to ${username}.`);
      }
    } catch (err) {
      this.fail(err, username);
    }
  }

  async acceptFriend(username) {
    try {
      await this.client.request('friend.accept', { username });
      this.notify(`You and ${username} are now friends.`);
      this.refreshFriends();
    } catch (err) {
      this.fail(err, username);
    }
  }

  async removeFriend(username) {
    try {
      await this.client.request('friend.remove', { username });
      this.friends.delete(username);
      this.renderFriends();
    } catch (err) {
      this.fail(err, username);
    }
  }

  // --- 1-to-1 calls -----------------------------------------------------

  busy() {
    return Boolean(this.call || this.room);
  }

  async startCall(peer, media) {
    if (this.busy()) return this.notify('Hang up the current call first.', true);
    const caps = this.settingsCaps();
    const call = { id: null, peer, media, caps, peerCaps: {}, role: 'caller', relayOnly: $('relay-only').checked };
    this.call = call;
    try {
      call.stream = await openUserMedia(media, caps);
    } catch (err) {
      this.call = null;
      return this.notify(describeMediaError(err), true);
    }
    this.showCall(`Calling ${peer}\u2026`, 'ringing');
    try {
      const ack = await this.client.request('call.invite', { to: peer, media, caps });
      call.id = ack.call_id;
      if (this.call !== call) this.client.send('call.cancel', { call_id: call.id });
    } catch (err) {
      this.teardownCall();
      this.fail(err, peer);
    }
  }

  onIncoming(p) {
    if (this.busy() || this.incoming) {
      this.client.send('call.reject', { call_id: p.call_id, reason: 'busy' });
      return;
    }
    this.incoming = p;
    const kinds = p.media.join(' and ');
    $('incoming-text').textContent = `${p.from} is calling (${kinds}).`;
    $('incoming').hidden = false;
    $('incoming').dataset.from = p.from;
  }

  async acceptCall() {
    const p = this.incoming;
    if (!p) return;
    this.incoming = null;
    $('incoming').hidden = true;
    const media = p.media.filter((m) => m !== 'screen');
    const caps = this.settingsCaps();
    const call = { id: p.call_id, peer: p.from, media, caps, peerCaps: p.caps || {}, role: 'callee', relayOnly: $('relay-only').checked };
    this.call = call;
    try {
      call.stream = await openUserMedia(media.length ? media : ['audio'], caps);
    } catch (err) {
      this.call = null;
      this.client.send('call.reject', { call_id: p.call_id, reason: 'declined' });
      return this.notify(describeMediaError(err), true);
    }
    try {
      await this.client.request('call.accept', { call_id: p.call_id, caps });
    } catch (err) {
      this.teardownCall();
      return this.fail(err, p.from);
    }
    if (this.call !== call) return;
    this.connect(call, false);
  }

  async declineCall() {
    const p = this.incoming;
    if (!p) return;
    this.incoming = null;
    $('incoming').hidden = true;
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
    this.showCall(`In a call with ${call.peer}`, 'connecting');
    call.remoteStreams = [];
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
    });
    call.link.pc.onsignalingstatechange = () => {
      if (call.link.pc.signalingState === 'stable') this.applyCallCaps(call);
    };
    this.startStats(call);
  }

  applyCallCaps(call) {
    const caps = mergeCaps(call.caps, call.peerCaps);
    call.appliedCaps = caps;
    applyCaps(call.link.pc, caps).catch((err) => this.notify(`Could not apply the capability settings: ${err.message}`, true));
  }

  onCallTrack(call, event) {
    const stream = event.streams[0] || new MediaStream([event.track]);
    if (!call.remoteStreams.includes(stream.id)) call.remoteStreams.push(stream.id);
    // The first stream is the peer's camera and microphone; another is a shared screen.
    const video = call.remoteStreams[0] === stream.id ? $('remote-video') : $('remote-screen');
    if (video.srcObject !== stream) video.srcObject = stream;
    if (video.id === 'remote-screen') {
      video.hidden = false;
      event.track.addEventListener('mute', () => { video.hidden = true; });
      event.track.addEventListener('unmute', () => { video.hidden = false; });
    }
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
    $('cancel-call').hidden = !ringing;
    for (const id of ['mute', 'camera', 'share', 'hangup']) $(id).hidden = ringing;
    $('camera').hidden = ringing || !call.stream.getVideoTracks().length;
    $('stats').hidden = ringing;
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
      this.incoming = null;
      $('incoming').hidden = true;
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
    for (const id of ['remote-video', 'remote-screen', 'local-video']) $(id).srcObject = null;
    $('remote-screen').hidden = true;
    $('call').hidden = true;
    $('call').dataset.state = 'ended';
    $('mute').textContent = 'Mute';
    $('camera').textContent = 'Camera off';
    $('share').textContent = 'Share screen';
  }

  toggleTrack(holder, kind, button, onText, offText) {
    if (!holder || !holder.stream) return;
    const tracks = kind === 'audio' ? holder.stream.getAudioTracks() : holder.stream.getVideoTracks();
    if (!tracks.length) return;
    const enabled = !tracks[0].enabled;
    tracks.forEach((t) => { t.enabled = enabled; });
    button.textContent = enabled ? onText : offText;
    button.setAttribute('aria-pressed', String(!enabled));
  }

  async toggleShare() {
    const call = this.call;
    if (!call || !call.link) return;
    if (call.screen) return this.stopShare(call);
    let screen;
    try {
      screen = await openScreen();
    } catch (err) {
      return this.notify(describeMediaError(err, 'screen'), true);
    }
    if (this.call !== call) { screen.getTracks().forEach((t) => t.stop()); return; }
    call.screen = screen;
    const track = screen.getVideoTracks()[0];
    track.contentHint = 'detail';  // text on a screen: keep the resolution, drop frames first
    call.screenSender = call.link.pc.addTrack(track, screen);
    track.addEventListener('ended', () => this.stopShare(call));
    $('share').textContent = 'Stop sharing';
  }

  stopShare(call) {
    if (!call.screen) return;
    call.screen.getTracks().forEach((t) => t.stop());
    call.screen = null;
    if (this.call === call && call.screenSender) call.link.pc.removeTrack(call.screenSender);
    call.screenSender = null;
    $('share').textContent = 'Share screen';
  }

  startStats(call) {
    clearInterval(this.statsTimer);
    this.stats = null;
    let reported = false;
    this.statsTimer = setInterval(async () => {
      if (this.call !== call) return;
      const summary = await summarize(call.link.pc, this.stats);
      if (this.call !== call) return;
      this.stats = summary;
      render($('stats'), summary, call.relayOnly);
      // One quality report per call for the analytics, once media has flowed.
      if (!reported && summary.path && summary.framesDecoded + summary.audioSamples > 0 && call.id) {
        reported = true;
        this.client.send('call.quality', { call_id: call.id, path: summary.path === 'relay' ? 'relay' : 'direct',
          rtt_ms: summary.rttMs || 0, loss: Math.min(1, summary.loss) });
      }
    }, 1000);
  }

  // --- group calls (mesh) ------------------------------------------------

  async createRoom() {
    if (this.busy()) return this.notify('Hang up the current call first.', true);
    await this.enterRoom(async () => this.client.request('room.create', { media: ['audio', 'video'] }));
  }

  onRoomInvited(p) {
    this.roomInvite = p;
    $('room-invite-text').textContent = `${p.from} invites you to a group call.`;
    $('room-invite').hidden = false;
    $('room-invite').dataset.from = p.from;
  }

  async joinRoom() {
    const invite = this.roomInvite;
    if (!invite) return;
    this.roomInvite = null;
    $('room-invite').hidden = true;
    if (this.busy()) return this.notify('Hang up the current call first.', true);
    await this.enterRoom(async () => this.client.request('room.join', { room_id: invite.room_id }));
  }

  async enterRoom(request) {
    const room = { id: null, links: new Map(), relayOnly: $('relay-only').checked };
    this.room = room;
    try {
      room.stream = await openUserMedia(['audio', 'video'], this.settingsCaps());
    } catch (err) {
      this.room = null;
      return this.notify(describeMediaError(err), true);
    }
    let ack;
    try {
      ack = await request();
    } catch (err) {
      this.teardownRoom();
      return this.fail(err);
    }
    room.id = ack.room_id;
    room.owner = ack.owner;
    $('room').hidden = false;
    $('room').dataset.roomId = room.id;
    $('tile-self').querySelector('video').srcObject = room.stream;
    this.renderFriends();
    this.showTopology(ack.topology, ack.call_server, null);
    // The joiner offers to everyone already in the room; they answer.
    for (const p of ack.participants) {
      if (p.session_id !== this.sessionId) this.roomLink(room, p.session_id, p.user, true);
    }
    this.updateRoomStatus();
  }

  roomLink(room, sessionId, user, offerer) {
    let entry = room.links.get(sessionId);
    if (entry) return entry;
    const tile = document.createElement('figure');
    tile.className = 'tile';
    tile.dataset.session = sessionId;
    tile.dataset.user = user;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement('figcaption');
    caption.textContent = user;
    tile.append(video, caption);
    $('tiles').append(tile);
    const link = new PeerLink({
      iceServers: this.iceServers,
      relayOnly: room.relayOnly,
      polite: !offerer,
      offerer,
      stream: room.stream,
      send: (kind, data) => {
        const payload = { room_id: room.id, to: sessionId, kind };
        if (kind === 'candidate') payload.candidate = data; else payload.sdp = data;
        this.client.request('room.signal', payload).catch((err) => {
          if (this.room === room && err.code !== 404) this.fail(err);
        });
      },
      onTrack: (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); },
      onState: (state) => { tile.dataset.state = state; this.updateRoomStatus(); },
      onError: (err) => this.notify(`Media negotiation with ${user} failed: ${err.message}`, true),
    });
    entry = { link, user, tile };
    room.links.set(sessionId, entry);
    this.updateRoomStatus();
    return entry;
  }

  onRoomJoined(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    this.notify(`${p.user} joined the group call.`);
    this.roomLink(room, p.session_id, p.user, false);
  }

  onRoomLeft(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    const entry = room.links.get(p.session_id);
    if (entry) {
      entry.link.close();
      entry.tile.remove();
      room.links.delete(p.session_id);
    }
    this.notify(`${p.user} left the group call.`);
    this.updateRoomStatus();
  }

  onRoomSignal(p) {
    const room = this.room;
    if (!room || room.id !== p.room_id) return;
    const entry = this.roomLink(room, p.from, p.from_user, false);
    if (p.kind === 'candidate') entry.link.handleCandidate(p.candidate);
    else entry.link.handleDescription(p.kind, p.sdp);
  }

  onRoomTopology(p) {
    if (!this.room || this.room.id !== p.room_id) return;
    this.showTopology(p.mode, p.call_server, p.reason);
  }

  showTopology(mode, callServer, reason) {
    const box = $('room-topology');
    $('room').dataset.topology = mode;
    if (mode === 'mesh') {
      box.hidden = true;
      return;
    }
    const why = reason === 'recording' ? 'recording started' : reason === 'threshold' ? 'the group grew past the mesh limit' : 'the server decided';
    box.textContent = `This call moved to the call server${callServer ? ` (${callServer})` : ''} because ${why}. ` +
      'This page does not talk to the call server yet: the existing mesh links keep running, new participants cannot reach you.';
    box.hidden = false;
  }

  updateRoomStatus() {
    const room = this.room;
    if (!room) return;
    const connected = [...room.links.values()].filter((e) => e.link.pc.connectionState === 'connected').length;
    $('room-status').textContent = `Group call: ${room.links.size + 1} participants, ${connected} connected (mesh).`;
  }

  inviteToRoom(user) {
    const room = this.room;
    if (!room || !room.id) return;
    this.client.request('room.invite', { room_id: room.id, to: user })
      .then(() => this.notify(`Invited ${user} to the group call.`))
      .catch((err) => this.fail(err, user));
  }

  async leaveRoom() {
    const room = this.room;
    if (!room) return;
    this.teardownRoom();
    if (room.id) {
      try {
        await this.client.request('room.leave', { room_id: room.id });
      } catch (err) {
        if (err.code !== 404) this.fail(err);
      }
    }
  }

  teardownRoom() {
    const room = this.room;
    if (!room) return;
    this.room = null;
    for (const entry of room.links.values()) {
      entry.link.close();
      entry.tile.remove();
    }
    if (room.stream) room.stream.getTracks().forEach((t) => t.stop());
    $('tile-self').querySelector('video').srcObject = null;
    $('room').hidden = true;
    $('room-topology').hidden = true;
    this.renderFriends();
  }
}

window.netcore = new App();
