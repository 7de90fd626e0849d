// One RTCPeerConnection to one remote party, with "perfect negotiation"
// (W3C WebRTC 1.0, section 10.7 example) so that either side may renegotiate
// mid-call (screen sharing) without glare. Used by 1-to-1 calls and by every
// pair of a mesh group call. A small data channel ("state") carries what the
// media cannot say: muted, camera off, and which stream is a shared screen.

export class PeerLink {
  // send(kind, data): kind is 'offer', 'answer' or 'candidate'.
  // offerer: adds its tracks at once (so it offers first); the other side adds
  // its tracks when the first offer arrives, reusing the offered transceivers.
  // onPeerState(state): the other side's {audio, video, screen} as it last said.
  constructor({ iceServers, relayOnly, polite, offerer, stream, send, onTrack, onState, onError, onPeerState }) {
    this.pc = new RTCPeerConnection({
      iceServers: iceServers || [],
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
    });
    this.polite = polite;
    this.send = send;
    this.onError = onError || (() => {});
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.pendingStream = offerer ? null : stream;
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) {
        const c = { candidate: candidate.candidate };
        if (candidate.sdpMid != null) c.sdpMid = candidate.sdpMid;
        if (candidate.sdpMLineIndex != null) c.sdpMLineIndex = candidate.sdpMLineIndex;
        send('candidate', c);
      }
    };
    this.pc.onnegotiationneeded = () => this._offer();
    this.pc.ontrack = (event) => onTrack(event);
    this.pc.onconnectionstatechange = () => onState && onState(this.pc.connectionState);
    this.onPeerState = onPeerState || (() => {});
    this.localState = null;
    this.channel = null;
    if (offerer) {
      this._useChannel(this.pc.createDataChannel('state'));
    } else {
      this.pc.ondatachannel = ({ channel }) => { if (channel.label === 'state') this._useChannel(channel); };
    }
    if (offerer && stream) {
      for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    }
  }

  _useChannel(channel) {
    this.channel = channel;
    channel.onopen = () => this._sendState();
    channel.onmessage = (event) => {
      try {
        this.onPeerState(JSON.parse(event.data));
      } catch {
        // not ours: ignore
      }
    };
  }

  // Tell the other side our {audio, video, screen}; sent again once the channel opens.
  sendState(state) {
    this.localState = state;
    this._sendState();
  }

  _sendState() {
    if (this.channel && this.channel.readyState === 'open' && this.localState) {
      this.channel.send(JSON.stringify(this.localState));
    }
  }

  async _offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send('offer', this.pc.localDescription.sdp);
    } catch (err) {
      this.onError(err);
    } finally {
      this.makingOffer = false;
    }
  }

  async handleDescription(type, sdp) {
    try {
      const collision = type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription({ type, sdp });
      if (type === 'offer') {
        if (this.pendingStream) {
          const stream = this.pendingStream;
          this.pendingStream = null;
          for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
        }
        await this.pc.setLocalDescription();
        this.send('answer', this.pc.localDescription.sdp);
      }
    } catch (err) {
      this.onError(err);
    }
  }

  async handleCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      if (!this.ignoreOffer) this.onError(err);
    }
  }

  close() {
    this.pc.onicecandidate = this.pc.onnegotiationneeded = this.pc.ontrack = null;
    this.pc.onconnectionstatechange = this.pc.ondatachannel = null;
    if (this.channel) this.channel.onopen = this.channel.onmessage = null;
    this.pc.close();
  }
}
