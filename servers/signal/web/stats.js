// The live call panel: one summary from RTCPeerConnection.getStats() per
// tick, rates computed against the previous tick.

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

export async function summarize(pc, previous) {
  const report = await pc.getStats();
  const now = performance.now();
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
  }
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
    video: [],  // inbound video tracks: {mid, width, height, fps, framesDecoded}
    sentVideo: [],  // outbound video: {mid, width, height, fps}
  };
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      summary.bytesIn += s.bytesReceived || 0;
      summary.packetsReceived += s.packetsReceived || 0;
      summary.packetsLost += Math.max(0, s.packetsLost || 0);
      if (s.kind === 'video') {
        summary.framesDecoded += s.framesDecoded || 0;
        summary.video.push({ mid: s.mid, width: s.frameWidth || 0, height: s.frameHeight || 0,
          fps: s.framesPerSecond || 0, framesDecoded: s.framesDecoded || 0 });
      } else if (s.kind === 'audio') {
        summary.audioSamples += s.totalSamplesReceived || 0;
      }
    } else if (s.type === 'outbound-rtp') {
      summary.bytesOut += s.bytesSent || 0;
      if (s.kind === 'video') {
        summary.sentVideo.push({ mid: s.mid, width: s.frameWidth || 0, height: s.frameHeight || 0,
          fps: s.framesPerSecond || 0 });
      }
    }
  });
  const total = summary.packetsReceived + summary.packetsLost;
  summary.loss = total ? summary.packetsLost / total : 0;
  if (previous) {
    const seconds = (now - previous.time) / 1000;
    if (seconds > 0) {
      summary.bitrateIn = Math.max(0, (summary.bytesIn - previous.bytesIn) * 8 / seconds);
      summary.bitrateOut = Math.max(0, (summary.bytesOut - previous.bytesOut) * 8 / seconds);
    }
  }
  return summary;
}

function kbps(bps) {
  return bps == null ? '\u2013' : `${(bps / 1000).toFixed(0)} kbit/s`;
}

function videoText(list) {
  const live = list.filter((v) => v.width);
  if (!live.length) return ['\u2013', '\u2013'];
  return [live.map((v) => `${v.width}\u00d7${v.height}`).join(', '),
    live.map((v) => `${Math.round(v.fps)}`).join(', ')];
}

// Fill the panel's <dd data-stat="..."> cells.
export function render(panel, s, relayOnly) {
  const [resolution, fps] = videoText(s.video);
  const [sentResolution, sentFps] = videoText(s.sentVideo);
  const cells = {
    path: s.path ? `${s.path}${relayOnly ? ' (relay only)' : ''}` : 'connecting\u2026',
    pair: s.pair || '\u2013',
    rtt: s.rttMs == null ? '\u2013' : `${s.rttMs.toFixed(1)} ms`,
    'bitrate-in': kbps(s.bitrateIn),
    'bitrate-out': kbps(s.bitrateOut),
    resolution: `${resolution} in, ${sentResolution} out`,
    fps: `${fps} in, ${sentFps} out`,
    loss: `${s.packetsLost} packets (${(s.loss * 100).toFixed(1)} %)`,
  };
  for (const [name, text] of Object.entries(cells)) {
    const cell = panel.querySelector(`[data-stat="${name}"]`);
    if (cell) cell.textContent = text;
  }
  panel.dataset.path = s.path;
}
