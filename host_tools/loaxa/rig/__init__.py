"""The HIL rig, split as labgrid does it.

* targets.py  - where the node is and how its power is switched (resource +
                power driver): a sim VM, a QEMU guest, a board on a port.
* the console - loaxa.console.NodeConsole, the one driver all targets share,
                since every target ends in a pyserial URL.
* strategy.py - getting a node into a state (off, app, repl) by transitions.
"""
