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


def unload(*names):
    """Drop loaxa_node submodules ("config", "rules.check") needed only for a
    moment (parsing rules, a session) and give their RAM back. Modules that
    set KEEP stay: those with viper or native code, which an ESP32 never
    frees, so a reload would leak executable RAM each time."""
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


def loaded():
    """Names of the loaxa_node submodules in memory now."""
    import sys
    return [k[11:] for k in sys.modules if k.startswith("loaxa_node.")]


def unload_new(before):
    """Leave the module table as loaded() found it. Objects still in use (a
    playing stream) keep their code alive until they end; the next user
    imports a fresh copy, so modules loaded this way keep no shared state."""
    unload(*[n for n in loaded() if n not in before])
