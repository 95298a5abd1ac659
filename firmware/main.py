# Boot stub on the node's flash root. Runs the application folder named in
# app.ptr (written atomically by `loaxa deploy` after a verified copy), so an
# interrupted deploy leaves the previous application in place.
import sys


def _mount_with_larger_cache():
    # The stock image mounts its LittleFS with 32-byte reads and a 128-byte
    # cache, and imports read 24 bytes at a time: the app's ~50 files then
    # cost thousands of flash reads (each stops both CPUs). A 1 KB cache
    # (about 2 KB of heap) imported the app 4.7x faster on the emulated
    # ESP32 (docs/hil.md). The sim has no partitions: the host's disk.
    try:
        import os

        import esp32
    except ImportError:
        return
    part = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")
    if not part:
        return
    os.umount("/")
    try:
        os.mount(os.VfsLfs2(part[0], readsize=256, progsize=32, lookahead=32), "/")
    except OSError:
        os.mount(part[0], "/")  # as the image mounted it
    os.chdir("/")


_mount_with_larger_cache()


def _app_dir():
    try:
        with open("app.ptr") as f:
            return f.read().strip()
    except OSError:
        return ""


_d = _app_dir()
if _d:
    sys.path.insert(0, _d)

try:
    from loaxa_node import app
except Exception as e:  # a broken app must still leave the REPL for repair
    sys.print_exception(e)
    print("loaxa: application failed to import; REPL left open for repair")
else:
    app.main()
