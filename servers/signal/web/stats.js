// The live call panel: one summary from RTCPeerConnection.getStats() per
// tick, per track (camera, screen, microphone; in and out) with codec,
// resolution, frame rate, bitrate, loss and round trip, plus the path of the
// connection. Rates are computed against the previous tick.

function pathType(local, remote) {
  const types = [local && local.candidateType, remote && remote.candidateType];
  if (types.includes('relay')) return 'relay';
  if (types.includes('srflx') || types.includes('prflx')) return 'srflx';
  return types[0] ? 'host' : '';
}

function describeCandidate(c) {
  if (!c) return '?';
  const address = c.address || c.ip || '?';
  const where = address.includes(':') ? `[${address}]:${c.port}` : `${address}:${c.port}`;
  return `${c.candidateType} ${(c.protocol || '').toLowerCase()} ${where}`;
}

// The selected candidate pair: the transport's (standard), else Firefox's `selected`, else nominated.
function selectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) report.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
  }
  return pair;
}

// The MediaStreamTrack id an RTP stream carries, through its transceiver (mid),
// else the stats' own track reference (Firefox gives no mid on older versions);
// null for a stream no longer sent or received (a screen share that stopped).
function trackIdOf(pc, report, s) {
  const inbound = s.type === 'inbound-rtp';
  const transceiver = s.mid != null ? pc.getTransceivers().find((t) => t.mid === s.mid) : null;
  if (transceiver) {
    const live = inbound ? ['sendrecv', 'recvonly'] : ['sendrecv', 'sendonly'];
    if (!live.includes(transceiver.currentDirection)) return null;
    const track = inbound ? transceiver.receiver.track : transceiver.sender.track;
    return track ? track.id : null;
  }
  if (inbound) return s.trackIdentifier || undefined;
  const source = s.mediaSourceId ? report.get(s.mediaSourceId) : null;
  return source && source.trackIdentifier ? source.trackIdentifier : undefined;
}

function trackRow(pc, report, s) {
  const inbound = s.type === 'inbound-rtp';
  const codec = s.codecId ? report.get(s.codecId) : null;
  const row = {
    id: s.id,
    mid: s.mid,
    direction: inbound ? 'in' : 'out',
    kind: s.kind || s.mediaType,
    trackId: trackIdOf(pc, report, s),  // undefined: not known (old Firefox)
    codec: codec && codec.mimeType ? codec.mimeType.split('/')[1] : '',
    width: s.frameWidth || 0,
    height: s.frameHeight || 0,
    fps: s.framesPerSecond || 0,
    bytes: inbound ? s.bytesReceived || 0 : s.bytesSent || 0,
    bitrate: null,
    packetsLost: 0,
    loss: null,
    rttMs: null,
  };
  if (inbound) {
    row.packetsLost = Math.max(0, s.packetsLost || 0);
    row.packetsReceived = s.packetsReceived || 0;
    const total = (s.packetsReceived || 0) + row.packetsLost;
    row.loss = total ? row.packetsLost / total : 0;
  } else {
    // What the far end reported about this stream (RTCP receiver reports).
    report.forEach((r) => {
      if (r.type === 'remote-inbound-rtp' && r.localId === s.id) {
        row.packetsLost = Math.max(0, r.packetsLost || 0);
        if (r.fractionLost != null) row.loss = r.fractionLost;
        if (r.roundTripTime != null) row.rttMs = r.roundTripTime * 1000;
      }
    });
  }
  return row;
}

export async function summarize(pc, previous) {
  const report = await pc.getStats();
  const now = performance.now();
  const pair = selectedPair(report);
  const local = pair ? report.get(pair.localCandidateId) : null;
  const remote = pair ? report.get(pair.remoteCandidateId) : null;
  const summary = {
    time: now,
    path: pathType(local, remote),
    pair: pair ? `${describeCandidate(local)} \u2194 ${describeCandidate(remote)}` : '',
    localType: local ? local.candidateType : '',
    remoteType: remote ? remote.candidateType : '',
    rttMs: pair && pair.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
    bytesIn: 0, bytesOut: 0, bitrateIn: null, bitrateOut: null,
    packetsReceived: 0, packetsLost: 0, loss: null,
    framesDecoded: 0, audioSamples: 0,
    jitterMs: null, freezes: 0,  // worst inbound jitter; video freezes so far (freezeCount)
    tracks: [],     // one row per RTP stream, in and out
    video: [],      // inbound video: {mid, width, height, fps, framesDecoded}
    sentVideo: [],  // outbound video: {mid, width, height, fps}
  };
  const before = new Map(previous ? previous.tracks.map((t) => [t.id, t]) : []);
  const seconds = previous ? (now - previous.time) / 1000 : 0;
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') return;
    const row = trackRow(pc, report, s);
    const old = before.get(row.id);
    if (old && seconds > 0) row.bitrate = Math.max(0, (row.bytes - old.bytes) * 8 / seconds);
    summary.tracks.push(row);
    if (s.type === 'inbound-rtp') {
      summary.bytesIn += row.bytes;
      summary.packetsReceived += s.packetsReceived || 0;
      summary.packetsLost += row.packetsLost;
      if (s.jitter != null) summary.jitterMs = Math.max(summary.jitterMs || 0, s.jitter * 1000);
      summary.freezes += s.freezeCount || 0;
      if (row.kind === 'video') {
        summary.framesDecoded += s.framesDecoded || 0;
        summary.video.push({ mid: s.mid, width: row.width, height: row.height, fps: row.fps,
          framesDecoded: s.framesDecoded || 0 });
      } else if (row.kind === 'audio') {
        summary.audioSamples += s.totalSamplesReceived || 0;
      }
    } else {
      summary.bytesOut += row.bytes;
      if (row.kind === 'video') summary.sentVideo.push({ mid: s.mid, width: row.width, height: row.height, fps: row.fps });
      if (summary.rttMs == null && row.rttMs != null) summary.rttMs = row.rttMs;
    }
  });
  const total = summary.packetsReceived + summary.packetsLost;
  summary.loss = total ? summary.packetsLost / total : 0;
  if (previous && seconds > 0) {
    summary.bitrateIn = Math.max(0, (summary.bytesIn - previous.bytesIn) * 8 / seconds);
    summary.bitrateOut = Math.max(0, (summary.bytesOut - previous.bytesOut) * 8 / seconds);
  }
  return summary;
}

const DASH = '\u2013';

export function formatKbps(bps) {
  return bps == null ? DASH : `${(bps / 1000).toFixed(0)} kbit/s`;
}

// Loopback round trips are well under a millisecond: say so rather than "0.0 ms".
export function formatMs(ms) {
  if (ms == null) return DASH;
  if (ms < 1) return '< 1 ms';
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function lossText(row) {
  if (row.loss == null) return `${row.packetsLost}`;
  return `${row.packetsLost} (${(row.loss * 100).toFixed(1)} %)`;
}

// Fill the panel: the connection's <dd data-stat="..."> cells, and one table
// row per track that `describe(row)` names ({role, text}; null leaves it out).
export function render(panel, s, relayOnly, describe) {
  const cells = {
    path: s.path ? `${s.path}${relayOnly ? ' (relay only)' : ''}` : 'connecting\u2026',
    pair: s.pair || DASH,
    rtt: formatMs(s.rttMs),
  };
  for (const [name, text] of Object.entries(cells)) {
    const cell = panel.querySelector(`[data-stat="${name}"]`);
    if (cell) cell.textContent = text;
  }
  panel.dataset.path = s.path;
  const body = panel.querySelector('tbody');
  const rows = [];
  for (const row of s.tracks) {
    if (row.trackId === null) continue;  // stopped: its counters no longer move
    const name = describe(row);
    if (!name) continue;
    const tr = document.createElement('tr');
    tr.dataset.direction = row.direction;
    tr.dataset.kind = row.kind;
    tr.dataset.role = name.role;
    const video = row.kind === 'video';
    const values = [name.text, row.codec || DASH,
      video && row.width ? `${row.width}\u00d7${row.height}` : DASH,
      video && row.width ? `${Math.round(row.fps)}` : DASH,
      formatKbps(row.bitrate), lossText(row), formatMs(row.rttMs)];
    for (const value of values) {
      const td = document.createElement('td');
      td.textContent = value;
      tr.append(td);
    }
    rows.push([name.order, tr]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  body.replaceChildren(...rows.map(([, tr]) => tr));
}
