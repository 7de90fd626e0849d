// One RTCPeerConnection to one remote party, with "perfect negotiation"
// (W3C WebRTC 1.0, section 10.7 example) so that either side may renegotiate
// mid-call (screen sharing) without glare. Used by 1-to-1 calls and by every
// pair of a mesh group call.

export class PeerLink {
  // send(kind, data): kind is 'offer', 'answer' or 'candidate'.
  // offerer: adds its tracks at once (so it offers first); the other side adds
  // its tracks when the first offer arrives, reusing the offered transceivers.
  constructor({ iceServers, relayOnly, polite, offerer, stream, send, onTrack, onState, onError }) {
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
    if (offerer && stream) {
      for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
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
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}
