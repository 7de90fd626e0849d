// Group calls through the call server: one RTCPeerConnection to it
// (docs/signaling.md "Media through the call server"). The page's offer
// publishes the microphone, the camera and a screen section that carries
// nothing until a screen is shared (the call server takes a new offer as a
// new connection, so sharing swaps the track in with replaceTrack instead of
// renegotiating), and receive-only sections ("slots") that the call server
// fills with the others' tracks; `room.slots` says which slot carries whose
// track. The answer comes back as `room.media`. The camera goes as simulcast
// (RFC 8853: three layers, rids q/h/f at a quarter, half and full size) when
// the capture is large enough for that to be worth it; the call server sends
// each subscriber the layer its link and its tile take.

const GATHER_TIMEOUT_MS = 3000;  // the offer goes with the candidates gathered by then
const RETRY_OFFER_MS = 500;      // while the room's call server is not linked (480)
export const MAX_OTHERS = 8;     // participants shown: a camera and a screen slot each, one audio slot
export const SIMULCAST_MIN = { width: 480, height: 270 };  // smaller captures go as one layer

// The camera's send encodings for a capture of width x height: three simulcast layers lowest
// first (the call server's rid order), or null (one layer) when the capture is smaller than
// SIMULCAST_MIN: a quarter of it would be a postage stamp, and a small capture is cheap to send whole.
export function cameraEncodings(width, height) {
  if (!(width >= SIMULCAST_MIN.width && height >= SIMULCAST_MIN.height)) return null;
  return [
    { rid: 'q', scaleResolutionDownBy: 4 },
    { rid: 'h', scaleResolutionDownBy: 2 },
    { rid: 'f', scaleResolutionDownBy: 1 },
  ];
}

// Which of a publisher's video sections is its camera: the first it offered
// (this page offers its camera before its screen); any later one is a screen.
export function compareMids(a, b) {
  const x = Number(a);
  const y = Number(b);
  if (Number.isInteger(x) && Number.isInteger(y)) return x - y;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

export class SfuLink {
  // offer(sdp) -> Promise: sends room.media (rejects with the signaling error);
  // onState(connectionState); onError(err). `others`: how many participants to make slots for.
  // stream: what this page publishes; null for a viewer (receive sections only).
  constructor({ iceServers, relayOnly, stream, others, offer, onState, onError }) {
    this.pc = new RTCPeerConnection({
      iceServers: iceServers || [],
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    this.sendOffer = offer;
    this.onError = onError || (() => {});
    this.closed = false;
    this.awaitingAnswer = false;
    this.retryTimer = null;
    this.pc.onconnectionstatechange = () => onState && onState(this.pc.connectionState);
    this.simulcast = false;
    this.screen = null;
    if (stream) this.addSendSections(stream);  // none: a viewer (the watch page) receives only
    const count = Math.max(1, Math.min(MAX_OTHERS, others));
    for (let i = 0; i < count; i++) {
      this.pc.addTransceiver('video', { direction: 'recvonly' });  // camera
      this.pc.addTransceiver('video', { direction: 'recvonly' });  // screen
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
    }
  }

  // The microphone, the camera (as simulcast when large enough) and the screen section, sendonly.
  addSendSections(stream) {
    const audio = stream.getAudioTracks()[0];
    const video = stream.getVideoTracks()[0];
    this.pc.addTransceiver(audio || 'audio', { direction: audio ? 'sendonly' : 'inactive', streams: [stream] });
    const settings = video ? video.getSettings() : {};
    const encodings = video ? cameraEncodings(settings.width, settings.height) : null;
    this.simulcast = Boolean(encodings);
    this.pc.addTransceiver(video || 'video', {
      direction: video ? 'sendonly' : 'inactive',
      streams: [stream],
      ...(encodings ? { sendEncodings: encodings } : {}),
    });
    this.screen = this.pc.addTransceiver('video', { direction: 'sendonly' });
  }

  // VP8 (with RTX) and Opus only: every codec a browser knows, in two dozen sections,
  // would make an offer larger than signaling's limit on an `sdp` (48 KiB).
  preferCodecs() {
    if (!window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const pick = (kind, names) => (RTCRtpReceiver.getCapabilities(kind) || { codecs: [] }).codecs
      .filter((c) => names.includes(c.mimeType.toLowerCase()));
    const video = pick('video', ['video/vp8', 'video/rtx']);
    const audio = pick('audio', ['audio/opus']);
    for (const transceiver of this.pc.getTransceivers()) {
      const codecs = transceiver.receiver.track.kind === 'video' ? video : audio;
      if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
    }
  }

  // Make the offer (with its candidates: the call server takes no trickle) and send it.
  async start() {
    try {
      this.preferCodecs();
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await this.gathered();
      if (!this.closed) await this.offer();
    } catch (err) {
      if (!this.closed) this.onError(err);
    }
  }

  gathered() {
    if (this.pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
      this.pc.addEventListener('icegatheringstatechange', () => {
        if (this.pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
      });
    });
  }

  async offer() {
    this.awaitingAnswer = true;
    try {
      await this.sendOffer(this.pc.localDescription.sdp);
    } catch (err) {
      this.awaitingAnswer = false;
      if (this.closed) return;
      if (err.code === 480) this.retryTimer = setTimeout(() => this.offer(), RETRY_OFFER_MS);
      else this.onError(err);
    }
  }

  // The call server's answer (room.media); false if none was awaited.
  async handleAnswer(sdp) {
    if (this.closed || !this.awaitingAnswer) return false;
    this.awaitingAnswer = false;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (err) {
      this.onError(err);
    }
    return true;
  }

  // The receive track of one slot, null if the connection has no such section.
  track(mid) {
    const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid);
    return transceiver ? transceiver.receiver.track : null;
  }

  // Share a screen (a video track) or stop (null): the screen section's track, no renegotiation.
  async setScreen(track) {
    if (this.screen) await this.screen.sender.replaceTrack(track);
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}
