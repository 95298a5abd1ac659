# Lets pure modules with viper/native loops import and run under CPython too,
# so the host and the tests use the very same code as the node.
#
# Convention for viper code: take buffers untyped and cast inside
# (p = ptr16(buf)); reads are unsigned, writes are masked (& 0xFFFF). Under
# MicroPython the casts are compiled by viper; here they are memoryviews with
# the same unsigned semantics.
try:
    import micropython
except ImportError:
    # CPython's stand-ins live in their own module: a device never loads it,
    # so their bytecode costs no RAM there.
    from .compat_cpython import const, micropython, ptr8, ptr16, ptr32  # type: ignore # noqa: F401
else:
    from micropython import const  # noqa: F401

    ptr8 = ptr16 = ptr32 = None  # type: ignore  # viper resolves these at compile time


def backoff_ms(fails, first, longest):
    """The pause before retry number `fails` (1 for the first): d doubles from
    first up to longest, and the pause is drawn from [d/2, d], so nodes that
    lost the same tower or broker do not come back in step, and it never
    collapses to zero. Small ints only: nothing is kept between calls."""
    import os
    d = min(longest, first << min(fails - 1, 16))
    r = os.urandom(2)
    return d // 2 + ((r[0] << 8) | r[1]) * (d // 2) // 65535


class uses:
    """`with uses("rules.engine") as engine:` imports a module for a block
    (uses() without a name: the block's own imports). What blocks import is
    unloaded when the last block running, in any task, ends: never while
    another task is inside one (a play awaiting its fade, a scheduler pass),
    so no task loses a module it uses and no module is imported twice while
    in use. Objects that outlive their block (a playing stream) keep their
    code; the next user imports a fresh copy, so modules loaded this way
    keep no shared state. Blocks may await: entering and leaving never do.
    The count is kept on the class, shared by all tasks (a class and not an
    object of its own: each resident class costs heap on a 64 KB node)."""

    users = 0  # blocks running now, in all tasks
    before = ()  # names loaded when the first of them began
    later = []  # type: list[str]  # unload() asked for while others used the table

    def __init__(self, name=None):
        self.name = name

    def __enter__(self):
        if not uses.users:
            uses.before = _loaded()
        uses.users += 1
        if self.name:
            try:
                return __import__("loaxa_node." + self.name, None, None, ("_",))
            except BaseException:
                self.__exit__()
                raise

    def __exit__(self, *exc):
        uses.users -= 1
        if not uses.users:
            b, later = uses.before, uses.later
            uses.before, uses.later = (), []
            _drop(*later, *[n for n in _loaded() if n not in b])


def detached(fn, *args):
    """fn(*args), a call that does not await, and what its imports loaded is
    dropped from the module table at once: its objects (a stream's source)
    keep their code, and the heap they leave is not left between them and
    what comes next. Safe in any task: no other task ran during the call, so
    none got those modules from the table."""
    before = _loaded()
    try:
        return fn(*args)
    finally:
        _drop(*[n for n in _loaded() if n not in before])


def unload(*names):
    """Drop loaxa_node submodules ("config", "rules.check") needed only for a
    moment (parsing rules, a session) and give their RAM back: at once at
    boot or from the only uses block running, else when the last one ends."""
    if uses.users > 1:  # another task may be using them
        uses.later.extend(names)
    else:
        _drop(*names)


def _drop(*names):
    # Modules that set KEEP stay: those with viper or native code, which an
    # ESP32 never frees, so a reload would leak executable RAM each time.
    import gc
    import sys
    for n in names:
        m = sys.modules.get("loaxa_node." + n)
        # sub-packages (net, audio, ...) stay: their __init__ is empty, and a
        # module left loaded (KEEP) must stay reachable from the one package
        if m is None or getattr(m, "KEEP", False) or hasattr(m, "__path__"):
            continue
        del sys.modules["loaxa_node." + n]
        head, _, leaf = ("loaxa_node." + n).rpartition(".")
        try:
            delattr(sys.modules[head], leaf)
        except (AttributeError, KeyError, TypeError):  # not loaded; ports differ in which
            pass
    # Collected even when nothing was dropped: a request's garbage then never
    # sits between what lives on (skipping it for requests that load nothing
    # ran the 128 KB sim heap out of contiguous blocks on the second stream).
    gc.collect()


def _loaded():
    # names of the loaxa_node submodules in memory now
    import sys
    return [k[11:] for k in sys.modules if k.startswith("loaxa_node.")]
