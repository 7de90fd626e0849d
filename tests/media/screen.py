"""An Xvfb display showing a synthetic-camera picture, so a screen grab can be read back.

``Picture(display, number)`` runs a small Tk program on the display that
shows :class:`~netcore.media.synthetic.SyntheticCamera`'s frame ``number``
full screen; whatever grabs the screen (x11grab, then an encoder and a peer)
decodes a picture whose frame number ``read_frame_number`` finds again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import stop_process

ROOT = Path(__file__).resolve().parent.parent.parent

_SHOW = r"""
import sys, tkinter
from netcore.media.synthetic import SyntheticCamera
width, height, number = (int(x) for x in sys.argv[1:4])
rgb = SyntheticCamera(width, height).frame(number).to_ndarray(format="rgb24")
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry(f"{width}x{height}+0+0")
image = tkinter.PhotoImage(data=b"P6 %d %d 255\n" % (width, height) + rgb.tobytes(), format="PPM")
tkinter.Label(root, image=image, borderwidth=0, highlightthickness=0).place(x=0, y=0)
root.update()
print("shown", flush=True)
root.mainloop()
"""


class Picture:
    """Frame ``number`` of a ``width`` x ``height`` synthetic camera, shown on ``display``."""

    def __init__(self, display: str, number: int, width: int = 640, height: int = 480) -> None:
        env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen([sys.executable, "-c", _SHOW, str(width), str(height), str(number)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "shown":
            self.close()
            raise RuntimeError(f"the picture did not show: {self.process.stderr.read()}")

    def close(self) -> None:
        stop_process(self.process, 5)
