"""Group calls: three browsers in a mesh, and the topology message once the server moves a room."""

from __future__ import annotations

from tests.web.conftest import SERVICE_SECRET
from tests.web.helpers import assert_media_grows, befriend, invite_and_join, open_room


def link_ids(page) -> list[str]:
    return page.evaluate("() => [...window.netcore.room.links.keys()]")


def test_mesh_of_three_every_pair_carries_media(open_user, names):
    a_name, b_name, c_name = names("alice"), names("bob"), names("carol")
    alice, bob, carol = open_user(a_name), open_user(b_name), open_user(c_name)
    open_room(alice, a_name, (bob, b_name), (carol, c_name))
    assert alice.get_attribute("#room", "data-topology") == "mesh"
    invite_and_join(alice, bob, b_name, a_name)
    invite_and_join(alice, carol, c_name, a_name)
    for page in (alice, bob, carol):
        page.wait_for_selector('#tiles figure[data-session][data-state="connected"] >> nth=1', timeout=20000)
        assert page.is_hidden("#room-topology")
        assert "3 participants, 2 connected (mesh)" in page.inner_text("#room-status")
    users = {page: sorted(page.eval_on_selector_all("#tiles figure[data-user]", "(fs) => fs.map((f) => f.dataset.user)"))
             for page in (alice, bob, carol)}
    assert users[alice] == sorted([b_name, c_name])
    assert users[bob] == sorted([a_name, c_name])
    # Every one of the six directions decodes video and plays audio.
    pages = [p for p in (alice, bob, carol) for _ in range(2)]
    ids = [s for p in (alice, bob, carol) for s in link_ids(p)]
    assert_media_grows(pages, session_ids=ids)
    # Carol leaves: the others drop her tile and keep their link.
    carol.click("#room-leave")
    for page in (alice, bob):
        page.wait_for_selector(f'#tiles figure[data-user="{c_name}"]', state="detached")
        assert len(link_ids(page)) == 1


def test_topology_message_when_the_room_moves_to_the_call_server(open_user, up_with_call_server, names):
    a_name, b_name, c_name = names("alice"), names("bob"), names("carol")
    alice, bob, carol = (open_user(n, url=up_with_call_server.url) for n in (a_name, b_name, c_name))
    open_room(alice, a_name, (bob, b_name), (carol, c_name))
    invite_and_join(alice, bob, b_name, a_name)
    alice.wait_for_selector('#tiles figure[data-state="connected"]', timeout=20000)
    invite_and_join(alice, carol, c_name, a_name)
    # The two already in the room get room.topology; the joiner learns it from its join answer.
    for page in (alice, bob, carol):
        page.wait_for_selector("#room-topology:not([hidden])")
        assert "moved to the call server (127.0.0.1:7000)" in page.inner_text("#room-topology")
        assert page.get_attribute("#room", "data-topology") == "sfu"
    assert "grew past the mesh limit" in alice.inner_text("#room-topology")


def service_link(up, name: str):
    """A call server's link as netcore-sfu opens it (``?server=NAME``), from this test."""
    from websockets.sync.client import connect

    base = up.url.replace("http://", "ws://").rstrip("/")
    return connect(f"{base}/v1/service?server={name}",
                   additional_headers={"Authorization": f"Bearer {SERVICE_SECRET}"})


def test_the_page_says_when_the_room_moves_to_another_call_server(open_user, up_with_call_server, names):
    a_name, b_name, c_name = names("alice"), names("bob"), names("carol")
    alice, bob, carol = (open_user(n, url=up_with_call_server.url) for n in (a_name, b_name, c_name))
    befriend(alice, a_name, bob, b_name)
    befriend(alice, a_name, carol, c_name)
    # A second call server besides netcore up's (named 127.0.0.1:7000): idle both, the name decides
    pages = (alice, bob, carol)
    with service_link(up_with_call_server, "000-doomed"):
        alice.click("#room-create")
        alice.wait_for_selector("#room:not([hidden])")
        invite_and_join(alice, bob, b_name, a_name)
        invite_and_join(alice, carol, c_name, a_name)
        for page in pages:
            page.wait_for_selector("#room-topology:not([hidden])")
            assert "moved to the call server (000-doomed)" in page.inner_text("#room-topology")
    # its link closed: that call server is dead, the room goes to the other
    for page in pages:
        page.wait_for_function("() => document.querySelector('#room-topology').textContent.includes("
                               "'(127.0.0.1:7000) because its previous call server stopped answering')")
