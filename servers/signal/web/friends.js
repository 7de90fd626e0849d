// The friends column: the list with presence and call buttons enabled only
// when a call can happen, removal behind a confirmation, requests, adding by
// name. Errors of adding show beside the field.

import { describeError } from './signal.js';
import { $, button, fieldError } from './ui.js';

export class FriendsView {
  constructor(app) {
    this.app = app;
    this.friends = new Map();   // user -> status
    this.requests = new Set();  // users who asked us
    this.confirming = null;     // the friend whose removal waits for a confirmation
    $('add-friend').addEventListener('submit', (e) => { e.preventDefault(); this.add(); });
  }

  // The friend list as the session's welcome gave it.
  load(friends) {
    this.friends = new Map(friends.map((f) => [f.user, f.status]));
    this.refresh();
  }

  listen(on) {
    on('presence', (p) => { if (this.friends.has(p.user)) { this.friends.set(p.user, p.status); this.render(); } });
    on('friend.requested', (p) => { this.requests.add(p.from); this.render(); this.app.notify(`${p.from} wants to be your friend.`); });
    on('friend.accepted', (p) => { this.app.notify(`${p.by} accepted your friend request.`); this.refresh(); });
    on('friend.removed', (p) => { this.friends.delete(p.by); this.render(); });
  }

  async refresh() {
    try {
      const list = await this.app.client.request('friend.list');
      this.friends = new Map(list.friends.map((f) => [f.user, f.status]));
      this.requests = new Set(list.requests);
      this.render();
    } catch (err) {
      this.app.fail(err);
    }
  }

  // Why a call to this friend is not possible now, or '' when it is.
  callBlocker(user, status) {
    if (this.app.call && this.app.call.state === 'ringing') return 'You are already calling someone.';
    if (this.app.call || this.app.room) return 'Hang up the current call first.';
    if (this.app.incoming) return 'Answer or decline the incoming call first.';
    if (status === 'busy') return `${user} is in another call.`;
    if (status !== 'online') return `${user} is offline.`;
    return '';
  }

  render() {
    const ul = $('friends');
    const focused = document.activeElement && ul.contains(document.activeElement)
      ? [document.activeElement.closest('li').dataset.user, document.activeElement.className] : null;
    ul.replaceChildren();
    for (const [user, status] of [...this.friends].sort()) ul.append(this.friendRow(user, status));
    $('friends-empty').hidden = this.friends.size > 0;
    if (focused) {
      const again = ul.querySelector(`li[data-user="${CSS.escape(focused[0])}"] .${focused[1].split(' ')[0]}`);
      if (again) again.focus();
    }
    const requests = $('requests');
    requests.replaceChildren();
    for (const user of [...this.requests].sort()) {
      const li = document.createElement('li');
      li.dataset.user = user;
      const actions = document.createElement('div');
      actions.className = 'row-actions';
      actions.append(button('Accept', 'accept-request', () => this.accept(user)));
      li.append(this.who(user, 'wants to be your friend', ''), actions);
      requests.append(li);
    }
    $('requests-empty').hidden = this.requests.size > 0;
  }

  who(user, statusText, status) {
    const who = document.createElement('div');
    who.className = 'who';
    const dot = document.createElement('span');
    dot.className = `dot ${status}`;
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = user;
    const badge = document.createElement('span');
    badge.className = `status ${status}`;
    badge.textContent = statusText;
    who.append(dot, name, badge);
    return who;
  }

  friendRow(user, status) {
    const li = document.createElement('li');
    li.dataset.user = user;
    li.dataset.status = status;
    const actions = document.createElement('div');
    actions.className = 'row-actions';
    if (this.confirming === user) {
      const question = document.createElement('span');
      question.className = 'confirm';
      question.textContent = `Remove ${user} from your friends?`;
      actions.append(question,
        button('Remove', 'confirm-remove danger', () => this.remove(user)),
        button('Keep', 'cancel-remove', () => { this.confirming = null; this.render(); }));
    } else {
      const blocker = this.callBlocker(user, status);
      const opts = { disabled: Boolean(blocker), title: blocker };
      actions.append(
        button('Video call', 'call-video primary', () => this.app.startCall(user, ['audio', 'video']), opts),
        button('Audio call', 'call-audio', () => this.app.startCall(user, ['audio']), opts));
      if (this.app.room) {
        actions.append(button('Invite to group', 'room-invite', () => this.app.rooms.invite(user),
          { disabled: status !== 'online', title: status !== 'online' ? `${user} is ${status}.` : '' }));
      }
    }
    const who = this.who(user, status, status);
    // On the name's line, away from the call buttons, so it never wraps under them.
    if (this.confirming !== user) {
      who.append(button('Remove', 'remove-friend quiet', () => { this.confirming = user; this.render(); },
        { title: `Remove ${user} from your friends` }));
    }
    li.append(who, actions);
    return li;
  }

  async add() {
    const username = $('friend-name').value.trim();
    fieldError('friend-error', '');
    try {
      const ack = await this.app.client.request('friend.request', { username });
      $('friend-name').value = '';
      if (ack.state === 'friends') {
        this.app.notify(`You and ${username} are now friends.`);
        this.refresh();
      } else {
        this.app.notify(`Friend request sent to ${username}.`);
      }
    } catch (err) {
      fieldError('friend-error', describeError(err, username));
    }
  }

  async accept(username) {
    try {
      await this.app.client.request('friend.accept', { username });
      this.app.notify(`You and ${username} are now friends.`);
      this.refresh();
    } catch (err) {
      this.app.fail(err, username);
    }
  }

  async remove(username) {
    this.confirming = null;
    try {
      await this.app.client.request('friend.remove', { username });
      this.friends.delete(username);
      this.app.notify(`${username} is no longer your friend.`);
    } catch (err) {
      this.app.fail(err, username);
    }
    this.render();
  }
}
