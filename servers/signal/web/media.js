// Local media: camera and microphone, the screen, the capability settings
// (max resolution, frame rate, bandwidth) and how they are applied to senders.

const DISPLAY_TIMEOUT_MS = 15000;

export class MediaError extends Error {}

export function describeMediaError(err, what = 'camera or microphone') {
  if (err instanceof MediaError) return err.message;
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Access to the ${what} was denied. Allow it in the browser's site settings and try again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No usable ${what} was found.`;
    case 'NotReadableError':
      return `The ${what} is in use by another application or could not be started.`;
    default:
      return `The ${what} could not be opened: ${err && err.message ? err.message : err}`;
  }
}

// media: list of 'audio' / 'video' (screen is never asked for up front);
// devices: {audio, video} device ids chosen in the device check ('' = default).
export async function openUserMedia(media, caps, devices = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MediaError('This page needs a secure origin (https, or http://localhost) to use the camera and microphone.');
  }
  let video = false;
  if (media.includes('video')) {
    video = videoConstraints(caps);
    if (devices.video) video = { ...(video === true ? {} : video), deviceId: { exact: devices.video } };
  }
  let audio = media.includes('audio');
  if (audio && devices.audio) audio = { deviceId: { exact: devices.audio } };
  return navigator.mediaDevices.getUserMedia({ audio, video });
}

// getDisplayMedia can wait forever on a picker nobody answers: always time out.
export async function openScreen() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    throw new MediaError('This browser cannot share the screen.');
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new MediaError(
      `Screen sharing did not start: no answer within ${DISPLAY_TIMEOUT_MS / 1000} s.`)), DISPLAY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([navigator.mediaDevices.getDisplayMedia({ video: true, audio: false }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// --- capabilities -----------------------------------------------------------
// caps as on the wire (call.invite/accept): {bandwidth (bit/s), max_resolution
// ('WxH'), max_framerate}. Each side sends its own settings and applies the
// stricter of its own and the peer's to what it sends.

export function parseResolution(text) {
  const match = /^(\d{2,5})x(\d{2,5})$/.exec(text || '');
  return match ? { width: Number(match[1]), height: Number(match[2]) } : null;
}

export function mergeCaps(a = {}, b = {}) {
  const merged = {};
  const smaller = (x, y) => (x == null ? y : y == null ? x : Math.min(x, y));
  const bandwidth = smaller(a.bandwidth, b.bandwidth);
  if (bandwidth != null) merged.bandwidth = bandwidth;
  const framerate = smaller(a.max_framerate, b.max_framerate);
  if (framerate != null) merged.max_framerate = framerate;
  const ra = parseResolution(a.max_resolution);
  const rb = parseResolution(b.max_resolution);
  const r = ra && rb ? (ra.width * ra.height <= rb.width * rb.height ? ra : rb) : ra || rb;
  if (r) merged.max_resolution = `${r.width}x${r.height}`;
  return merged;
}

function videoConstraints(caps = {}) {
  const constraints = {};
  const r = parseResolution(caps.max_resolution);
  if (r) {
    constraints.width = { max: r.width };
    constraints.height = { max: r.height };
  }
  if (caps.max_framerate) constraints.frameRate = { max: caps.max_framerate };
  return Object.keys(constraints).length ? constraints : true;
}

// Cap every video sender: bitrate and frame rate in the encoding parameters
// (RTCRtpSender.setParameters), resolution by scaling down the track.
export async function applyCaps(pc, caps) {
  const r = parseResolution(caps.max_resolution);
  for (const sender of pc.getSenders()) {
    const track = sender.track;
    if (!track || track.kind !== 'video') continue;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) continue;
    const settings = track.getSettings();
    for (const encoding of params.encodings) {
      if (caps.bandwidth) encoding.maxBitrate = caps.bandwidth;
      if (caps.max_framerate) encoding.maxFramerate = caps.max_framerate;
      if (r && settings.width && settings.height) {
        encoding.scaleResolutionDownBy = Math.max(1, settings.width / r.width, settings.height / r.height);
      }
    }
    await sender.setParameters(params);
  }
}

// --- the camera on the call server -------------------------------------------
// A call server forwards each subscriber the simulcast layer its link and tile
// take, so the publisher captures large enough for three layers to mean
// something: CALL_SERVER_CAPTURE, within the max resolution of the settings.

export const CALL_SERVER_CAPTURE = { width: 1280, height: 720 };

// Ask the stream's camera for CALL_SERVER_CAPTURE (or the settings' max resolution, if smaller)
// with applyConstraints on its track: a second getUserMedia would be handed the source already
// open at its present size. Returns the track's new settings, or null when the capture is already
// that large, there is no camera or the settings allow nothing larger. On failure (a camera that
// cannot) the capture stays as it was (the error is thrown).
export async function enlargeCamera(stream, caps = {}) {
  const track = stream.getVideoTracks()[0];
  if (!track || track.readyState === 'ended') return null;
  const cap = parseResolution(caps.max_resolution);
  const width = cap ? Math.min(cap.width, CALL_SERVER_CAPTURE.width) : CALL_SERVER_CAPTURE.width;
  const height = cap ? Math.min(cap.height, CALL_SERVER_CAPTURE.height) : CALL_SERVER_CAPTURE.height;
  const now = track.getSettings();
  if (now.width * now.height >= width * height) return null;
  const video = { width: { ideal: width, max: width }, height: { ideal: height, max: height } };
  if (caps.max_framerate) video.frameRate = { max: caps.max_framerate };
  await track.applyConstraints(video);
  return track.getSettings();
}
