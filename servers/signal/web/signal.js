// The signaling client: one WebSocket to netcore-signal, requests answered by
// ack/error with the same id, server pushes dispatched as DOM events whose
// type is the message type (detail = payload). See docs/signaling.md.

export class SignalError extends Error {
  constructor(code, reason, type) {
    super(reason);
    this.code = code;
    this.reason = reason;
    this.type = type;
  }
}

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

const REQUEST_TIMEOUT_MS = 10000;

export class SignalClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;           // ws://host:port/v1/ws
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, type, timer}
    this.token = null;
    this.resumeToken = null;
    this.lastSeq = 0;
    this.closedByUser = false;
  }

  // Open the socket; with a token the session opens at once (welcome follows),
  // with resume the server replays what we missed.
  open({ token = null, resume = false } = {}) {
    const params = new URLSearchParams();
    if (token) params.set('token', token);
    if (resume && this.resumeToken) {
      params.set('resume', this.resumeToken);
      params.set('last_seq', String(this.lastSeq));
    }
    const query = params.toString();
    const ws = new WebSocket(query ? `${this.url}?${query}` : this.url);
    this.ws = ws;
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new SignalError(0, 'cannot reach the signaling server', 'connect'));
      ws.onmessage = (event) => this._receive(event.data);
      ws.onclose = (event) => this._closed(ws, event);
    });
  }

  request(type, payload = {}) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new SignalError(0, 'not connected to the signaling server', type));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalError(0, 'the signaling server did not answer', type));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, type, timer });
      this.ws.send(JSON.stringify({ v: 1, type, id, payload }));
    });
  }

  // Fire and forget (no id, so no ack; errors still come back with id null).
  send(type, payload) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ v: 1, type, payload }));
    }
  }

  close() {
    this.closedByUser = true;
    if (this.ws) this.ws.close(1000, 'bye');
  }

  _receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.seq === 'number') this.lastSeq = message.seq;
    const waiter = message.id != null ? this.pending.get(message.id) : undefined;
    if ((message.type === 'ack' || message.type === 'error') && waiter) {
      this.pending.delete(message.id);
      clearTimeout(waiter.timer);
      if (message.type === 'ack') waiter.resolve(message.payload);
      else waiter.reject(new SignalError(message.payload.code, message.payload.reason, waiter.type));
      return;
    }
    if (message.type === 'welcome') {
      this.resumeToken = message.payload.resume_token;
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message.payload }));
  }

  _closed(ws, event) {
    if (ws !== this.ws) return;
    for (const [, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new SignalError(0, 'the connection to the signaling server closed', waiter.type));
    }
    this.pending.clear();
    this.dispatchEvent(new CustomEvent('closed', { detail: { code: event.code, reason: event.reason, byUser: this.closedByUser } }));
  }
}
