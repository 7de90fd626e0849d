"""Call recording: journals of received media, and files made from them.

* ``journal`` -- the segment and record format (checksummed, append-only), sans-IO;
* ``manifest`` -- the room manifest (participants, tracks, codecs, times);
* ``logger`` -- :class:`RoomLogger`, what a call server feeds;
* ``keyframes`` -- :class:`KeyFramePolicy`, when to ask a publisher for a key frame;
* ``writer`` -- the files (segments rotated by size, the manifest replaced atomically);
* ``reader`` -- a journal directory read back;
* ``timeline`` -- every track on one clock from the sender reports;
* ``creator`` -- journals to WebM/Matroska files without re-encoding;
* ``store`` -- where the files go (a directory; an interface for others).

docs/recording.md describes the format and the pieces.
"""
