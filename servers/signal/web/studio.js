// The operator's view of a studio room (docs/broadcast.md, "Input manager"): the room's owner
// starts the studio (`studio.start`), every source is the tile the room already shows for its
// participant, and the program (the call server's publisher "program") gets a tile of its own.
// The panel lists the video sources with a Cut button each, the microphones in a select, and
// the card button (the audio select offers the mix of every microphone too), and Stop studio
// (`studio.stop`: the program off air, `studio.stopped` to everyone); `studio.state` from the call server says what is on air (and what a cut waits
// for: the new source's key frame), and is shown to everyone in the room, the buttons to the
// operator only.

import { $ } from './ui.js';

export const PROGRAM = 'program';  // the program's participant id in the room's slots

export class StudioPanel {
  // app: the App (client, me, notify, fail); names(sessionId): a participant's user name.
  constructor(app, names) {
    this.app = app;
    this.names = names;
    this.room = null;
    this.state = null;
    $('room-studio').addEventListener('click', () => this.start());
    $('studio-card').addEventListener('click', () => this.command('studio.card', {}));
    $('studio-stop').addEventListener('click', () => this.command('studio.stop', {}));
    $('studio-audio').addEventListener('change', (e) => {
      const value = e.target.value;
      const source = value ? JSON.parse(value) : null;
      this.command('studio.audio', { source });
    });
  }

  // A room entered (the owner may start a studio) or left (null).
  attach(room, owner) {
    this.room = room;
    this.state = null;
    $('room-studio').hidden = !room || !owner;
    $('studio').hidden = true;
  }

  get operator() {
    return Boolean(this.room && this.room.owner === this.app.me);
  }

  async start() {
    if (!this.room) return;
    try {
      await this.app.client.request('studio.start', { room_id: this.room.id });
      $('room-studio').hidden = true;
    } catch (err) {
      this.app.fail(err);
    }
  }

  async command(type, payload) {
    if (!this.room) return;
    try {
      await this.app.client.request(type, { room_id: this.room.id, ...payload });
    } catch (err) {
      this.app.fail(err);
    }
  }

  name(source) {
    if (!source) return 'nothing';
    if (source.card) return 'the card';
    if (source.mix) return 'the mix';
    return `${this.names(source.publisher) || source.publisher} (${source.track})`;
  }

  // studio.stopped: the program is off air; the owner may start the studio again.
  onStopped(p) {
    if (!this.room || this.room.id !== p.room_id) return;
    this.state = null;
    $('studio').hidden = true;
    $('room-studio').hidden = !this.operator;
    this.app.notify(`${p.by} stopped the studio: the program is off air.`);
  }

  // studio.state: what is on air, and the sources.
  onState(p) {
    if (!this.room || this.room.id !== p.room_id) return;
    this.state = p;
    $('room-studio').hidden = true;
    $('studio').hidden = false;
    const same = (a, b) => Boolean(a && b && a.publisher === b.publisher && a.track === b.track);
    $('studio-on-air').textContent = `On air: ${this.name(p.video)}` + (p.next ? `; cutting to ${this.name(p.next)}` : '')
      + ` \u00b7 audio: ${this.name(p.audio)}`;
    $('studio').dataset.video = p.video ? (p.video.card ? 'card' : `${p.video.publisher} ${p.video.track}`) : '';
    $('studio').dataset.next = p.next ? (p.next.card ? 'card' : `${p.next.publisher} ${p.next.track}`) : '';
    const list = $('studio-sources');
    list.textContent = '';
    const audio = $('studio-audio');
    audio.textContent = '';
    const none = document.createElement('option');
    none.value = '';
    none.textContent = 'no audio';
    audio.append(none);
    const mix = document.createElement('option');
    mix.value = JSON.stringify({ mix: true });
    mix.textContent = 'mix of every microphone';
    mix.selected = Boolean(p.audio && p.audio.mix);
    audio.append(mix);
    for (const source of p.sources || []) {
      const key = { publisher: source.publisher, track: source.track };
      if (source.kind === 'video') {
        const button = document.createElement('button');
        button.textContent = `Cut to ${this.name(key)}`;
        button.dataset.publisher = source.publisher;
        button.dataset.track = source.track;
        button.setAttribute('aria-pressed', String(same(key, p.video)));
        button.disabled = !this.operator;
        button.addEventListener('click', () => this.command('studio.cut', { source: key }));
        const item = document.createElement('li');
        item.append(button);
        list.append(item);
      } else {
        const option = document.createElement('option');
        option.value = JSON.stringify(key);
        option.textContent = this.name(key);
        option.selected = same(key, p.audio);
        audio.append(option);
      }
    }
    audio.disabled = !this.operator;
    $('studio-card').disabled = !this.operator || !p.card;
    $('studio-stop').disabled = !this.operator;
    $('studio-card').setAttribute('aria-pressed', String(Boolean(p.video && p.video.card)));
  }
}
