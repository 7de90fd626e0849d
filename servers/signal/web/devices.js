// The pre-call device check: camera preview, microphone level, and the
// choice of camera and microphone that calls then open (media.js takes the
// chosen device ids through `chosen()`).

import { describeMediaError } from './media.js';

const LEVEL_INTERVAL_MS = 100;

// The loudness (0..1, RMS) of a stream's first audio track, sampled on demand.
export class LevelMeter {
  constructor(stream) {
    const Context = window.AudioContext || window.webkitAudioContext;
    this.context = new Context();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 512;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.context.createMediaStreamSource(stream).connect(this.analyser);
    this.context.resume().catch(() => {});
  }

  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    return Math.min(1, Math.sqrt(sum / this.samples.length) * 4);
  }

  close() {
    this.context.close().catch(() => {});
  }
}

export class DeviceCheck {
  // els: {preview, cameraSelect, micSelect, meter, error, start, stop}
  constructor(els) {
    this.els = els;
    this.stream = null;
    this.meter = null;
    this.timer = null;
    els.start.addEventListener('click', () => this.start());
    els.stop.addEventListener('click', () => this.stop());
    for (const select of [els.cameraSelect, els.micSelect]) {
      select.addEventListener('change', () => { if (this.stream) this.start(); });
    }
  }

  // The devices calls should open: {audio, video} device ids ('' = the default).
  chosen() {
    return { audio: this.els.micSelect.value, video: this.els.cameraSelect.value };
  }

  get running() {
    return Boolean(this.stream);
  }

  async start() {
    this.release();
    this.els.error.hidden = true;
    const { audio, video } = this.chosen();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: audio ? { deviceId: { exact: audio } } : true,
        video: video ? { deviceId: { exact: video } } : true,
      });
    } catch (err) {
      this.els.error.textContent = describeMediaError(err);
      this.els.error.hidden = false;
      return;
    }
    this.stream = stream;
    this.els.preview.srcObject = stream;
    this.meter = new LevelMeter(stream);
    this.timer = setInterval(() => { this.els.meter.value = this.meter.level(); }, LEVEL_INTERVAL_MS);
    this.els.start.hidden = true;
    this.els.stop.hidden = false;
    await this.listDevices();
  }

  // Labels are only readable once the page may use a device: list after opening.
  async listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, track) => {
      const current = select.value || (track && track.getSettings().deviceId) || '';
      select.replaceChildren(new Option('default', ''));
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        select.append(new Option(d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId));
      });
      select.value = [...select.options].some((o) => o.value === current) ? current : '';
    };
    fill(this.els.cameraSelect, 'videoinput', this.stream && this.stream.getVideoTracks()[0]);
    fill(this.els.micSelect, 'audioinput', this.stream && this.stream.getAudioTracks()[0]);
  }

  release() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.meter) this.meter.close();
    this.meter = null;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.els.preview.srcObject = null;
    this.els.meter.value = 0;
  }

  // Stop the check (a call is about to open the devices itself).
  stop() {
    this.release();
    this.els.start.hidden = false;
    this.els.stop.hidden = true;
  }
}
